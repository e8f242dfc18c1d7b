"""The embedded landmark and face recognition nets (service/assets/faces) are face-api.js's: against face-api's own
code running its own weights in Node with TensorFlow.js, on real faces through the service's whole path (crops,
resize, ONNX graph); `python -m export faces` makes the same graphs again; and bad input gets a clear error, never a
crash."""

import numpy as np
import pytest

from service.faces.nets import (FACES_DIR, DescriptorNet, FaceNetsError, LandmarkNet, descriptor_distance,
                                provenance)


@pytest.fixture(scope="module")
def nets():
    return LandmarkNet(), DescriptorNet()


@pytest.fixture(scope="module")
def astronaut():
    from service.footage.people import real_photos

    return real_photos()[0]


def test_bad_input_is_refused_clearly_and_edges_do_not_crash(nets, astronaut, tmp_path):
    landmarks, descriptors = nets
    image, (x, y, w, h) = astronaut.image, astronaut.face
    with pytest.raises(FaceNetsError, match=r"landmark68.onnx.*make faces"):
        LandmarkNet(tmp_path)
    with pytest.raises(FaceNetsError, match="not a box"):
        landmarks.landmarks(image, (x, y, 0, h))
    with pytest.raises(FaceNetsError, match="BGR uint8 frame"):
        landmarks.landmarks(image.astype(np.float32), astronaut.face)
    with pytest.raises(FaceNetsError, match=r"\(68, 2\)"):
        descriptors.describe(image, np.zeros((5, 2)))
    with pytest.raises(FaceNetsError, match="coincide"):
        descriptors.describe(image, np.full((68, 2), 10.0))
    with pytest.raises(FaceNetsError, match="unknown face alignment 'rotate'"):
        DescriptorNet(align="rotate")
    assert landmarks.landmarks_many(image, []).shape == (0, 68, 2)
    assert descriptors.describe_many(image, []).shape == (0, 128)
    # half the face past the frame's left edge, a 20 px face, a grey frame: finite answers of the right shape
    shifted = np.ascontiguousarray(image[:, x + w // 2:])
    grey = np.full((480, 640, 3), 128, np.uint8)
    tiny = np.ascontiguousarray(image[::5, ::5])
    for frame, box in ((shifted, (-w // 2, y, w, h)), (tiny, (x / 5, y / 5, w / 5, h / 5)),
                       (grey, (300, 200, 100, 100))):
        points = landmarks.landmarks(frame, box)
        descriptor = descriptors.describe(frame, points)
        assert points.shape == (68, 2) and points.dtype == np.float32 and np.isfinite(points).all()
        assert descriptor.shape == (128,) and descriptor.dtype == np.float32 and np.isfinite(descriptor).all()


# ---- against face-api.js in TensorFlow.js ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faces(faceapi_package, astronaut):
    """The three photographs, a demo group photo (three people), and the astronaut at a fifth of her size (a face
    of 21 px, upsampled)."""
    from export.faceapi_faces import RealFace, real_faces

    x, y, w, h = astronaut.face
    tiny = RealFace("astronaut/5", np.ascontiguousarray(astronaut.image[::5, ::5]), (x / 5, y / 5, w / 5, h / 5))
    return real_faces(faceapi_package, ("sample1.jpg",)) + [tiny]


@pytest.fixture(scope="module")
def squares(faces, nets):
    from export.faceapi_faces import face_squares

    return face_squares(faces, nets[0])


def test_embedded_nets_match_face_api_in_tensorflow_js_on_real_faces(faceapi_package, nets, squares):
    from export.faceapi_faces import NETS, TFJS_TOLERANCE, tfjs_parity

    runners = {"landmark68": nets[0].net.run, "recognition": nets[1].net.run}
    for net in NETS:
        check = tfjs_parity(faceapi_package, net, squares[net.key], runners[net.key])
        print(f"\n{net.file} vs face-api in TensorFlow.js {check['tfjs']} ({check['backend']}), {check['faces']} real "
              f"faces of {check['sides_px'][0]}..{check['sides_px'][1]} px: max abs diff {check['max_abs_diff']:.2e}")
        assert check["max_abs_diff"] < TFJS_TOLERANCE and check["backend"] == "cpu"
        assert check["sides_px"][0] < 30 < net.size < check["sides_px"][1]  # up- and down-sampled both
    recorded = provenance()["nets"]
    assert all(recorded[net.key]["parity"]["service_vs_tfjs"]["max_abs_diff"] < TFJS_TOLERANCE for net in NETS)


def test_landmarks_and_descriptors_are_a_faces(nets, faces):
    """Where the points fall on the astronaut, and that a face is nearer to itself in other light and mirrored
    than to the other people."""
    import cv2

    landmarks, descriptors = nets
    astronaut = faces[0]
    x, y, w, h = astronaut.box
    points = landmarks.landmarks(astronaut.image, astronaut.box)
    eyes, mouth = points[36:48], points[48:68]
    assert (eyes[:, 1] < mouth[:, 1].min()).all() and (points[36:42, 0].mean() < points[42:48, 0].mean())
    assert ((points >= (x - 0.1 * w, y - 0.1 * h)) & (points <= (x + 1.1 * w, y + 1.1 * h))).all()
    people = descriptors.describe_many(astronaut.image, [points])
    others = [descriptors.describe(f.image, landmarks.landmarks(f.image, f.box)) for f in faces[1:-1]
              if f.name != "cameraman"]  # turned away: no good descriptor
    darker = cv2.convertScaleAbs(astronaut.image, alpha=0.6)
    mirrored = cv2.flip(astronaut.image, 1)
    mirror_box = (astronaut.image.shape[1] - x - w, y, w, h)
    same = [descriptors.describe(darker, landmarks.landmarks(darker, astronaut.box)),
            descriptors.describe(mirrored, landmarks.landmarks(mirrored, mirror_box))]
    same_distances, other_distances = descriptor_distance(np.stack(same), people), descriptor_distance(
        np.stack(others), people)
    print(f"\nastronaut: to herself darker, mirrored {np.round(same_distances, 3)}; to {len(others)} other people "
          f"{np.round(np.sort(other_distances), 3)}")
    assert same_distances.max() < other_distances.min()
    assert isinstance(descriptor_distance(people[0], others[0]), float)


def test_levelled_alignment_levels_a_tilted_face(nets, astronaut):
    """The descriptor's input of a head tilted by 25 degrees has level eyes (as the landmark net reads it again),
    and the face-api square it starts from keeps the tilt."""
    import cv2

    from service.faces.nets import aligned_square, cut_square, eye_roll, levelled_face

    landmarks = nets[0]
    x, y, w, h = astronaut.face
    turn = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), 25, 1.0)
    tilted = cv2.warpAffine(astronaut.image, turn, astronaut.image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    points = landmarks.landmarks(tilted, astronaut.face)
    level = np.ascontiguousarray(np.clip(levelled_face(tilted, points), 0, 255).astype(np.uint8)[:, :, ::-1])
    square = np.ascontiguousarray(cut_square(tilted, *aligned_square(points))[:, :, ::-1])
    rolls = [eye_roll(landmarks.landmarks(image, (0, 0, image.shape[1], image.shape[0]))) for image in (level, square)]
    print(f"\nastronaut tilted 25 degrees: eye roll {eye_roll(points):.1f}; in the levelled input {rolls[0]:.1f}, in "
          f"face-api's square {rolls[1]:.1f}")
    assert abs(eye_roll(points)) > 15 and abs(rolls[0]) < 4 and abs(rolls[1]) > 15


def test_reexport_reproduces_the_embedded_nets(faceapi_package, nets, squares, tmp_path):
    """`python -m export faces` (here checked against TensorFlow.js on the three photographs only) writes graphs
    that give what the embedded ones give."""
    from export.faceapi_faces import export_faces

    fresh = export_faces(tmp_path, faceapi_package.npm_dir, demo_photos=())
    embedded = provenance(FACES_DIR)
    for key, ours, theirs in (("landmark68", LandmarkNet(tmp_path), nets[0]),
                              ("recognition", DescriptorNet(tmp_path), nets[1])):
        assert fresh["nets"][key]["from"] == embedded["nets"][key]["from"]
        assert np.abs(ours.net.run(squares[key]) - theirs.net.run(squares[key])).max() <= 1e-6
    assert fresh["license"].startswith("MIT") and "1.7.15" in fresh["source"]


def test_matching_benchmark_pairs_only_what_is_known():
    """bench.face_matching: frames of one sequence are no same-person pair; where identities across photos are
    unknown only faces of one photo make different-people pairs; the threshold keeps false matches at its target."""
    from bench.face_matching import Face, choose_threshold, pair_distances, rates

    def face(person, group):
        return Face(person, group, group[-1], np.zeros((1, 1, 3), np.uint8), (0, 0, 1, 1))

    faces = [face("a", "a1"), face("a", "a1"), face("a", "a2"), face("b", "b1"), face("c", "c1")]
    vectors = np.zeros((5, 128), np.float32)
    vectors[:, 0] = [0.0, 0.125, 0.25, 1.0, 2.0]  # exact in float32
    pairs = pair_distances(faces, vectors)
    assert sorted(pairs["same"]) == [0.125, 0.25]  # a1-a2 twice; a1-a1 left out
    assert pairs["different"].size == 3 * 1 + 3 * 1 + 1  # a-b, a-c, b-c
    r = rates(pairs, 0.2)
    assert (r["false_matches"], r["misses"], r["same_pairs"]) == (0, 1, 2)
    assert choose_threshold(pairs, target=0.0) == 0.75  # the grid's largest with no different pair below (a2-b)
    photo = [face("p", "photo1"), face("q", "photo1"), face("r", "photo2")]
    within = pair_distances(photo, vectors[:3], different_within_group_only=True)
    assert within["different"].size == 1 and within["same"].size == 0


def test_the_resize_is_tensorflow_js_resize_bilinear_to_the_bit():
    """service's resize_bilinear_tf blends rows first on the rows it needs; tfjs-core's resizeBilinear (the order
    written out here) blends columns first. Same float32 pixels, on squares of odd, small and large sides."""
    from service.faces.nets import resize_bilinear_tf

    def tfjs_order(image, size):
        pixels = image.astype(np.float64)
        out = np.empty((size, size, image.shape[2]), np.float32)
        for r in range(size):
            y = r * image.shape[0] / size
            top, bottom, y_lerp = int(np.floor(y)), min(int(np.ceil(y)), image.shape[0] - 1), y - np.floor(y)
            for c in range(size):
                x = c * image.shape[1] / size
                left, right, x_lerp = int(np.floor(x)), min(int(np.ceil(x)), image.shape[1] - 1), x - np.floor(x)
                t = pixels[top, left] + (pixels[top, right] - pixels[top, left]) * x_lerp
                b = pixels[bottom, left] + (pixels[bottom, right] - pixels[bottom, left]) * x_lerp
                out[r, c] = t + (b - t) * y_lerp
        return out

    rng = np.random.default_rng(3)
    for side, size in ((21, 112), (95, 112), (150, 150), (239, 112), (268, 150)):
        image = rng.integers(0, 256, (side, side + 1, 3), dtype=np.uint8)
        np.testing.assert_array_equal(resize_bilinear_tf(image, size), tfjs_order(image, size))


def test_the_default_match_distance_is_the_one_measured_on_real_faces():
    """person_match_distance is bench.face_matching's service_threshold (chosen on CK+48 even subjects), whose
    held-out false matches and misses bench/results/face_matching.json records."""
    import json
    from pathlib import Path

    from service.config import Settings

    result = json.loads((Path(__file__).resolve().parent.parent / "bench" / "results" / "face_matching.json")
                        .read_text())
    chosen = result["service_threshold"]
    assert Settings(_env_file=None).person_match_distance == chosen["person_match_distance"]
    held_out = result["held_out"]["ckplus48-odd"]["service_default"]
    assert held_out["threshold"] == chosen["person_match_distance"] and held_out["different_pairs"] > 100_000
