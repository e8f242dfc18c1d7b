"""People (issue 32): what telling people apart, reading their head pose and judging their faces costs, and how well
it tells people apart. `python -m bench people` prints the figures and writes bench/results/people.json:

- matching: face-api.js descriptors through the service's own FaceReader gate (landmarks, pose within
  person_describe_max_angle, quality) on real people: npm @vladmandic/face-api's demo photographs (22 people; as in
  bench/face_matching.py only two faces of one photograph count as different people, whether someone appears in two
  photographs being unknown) and the same person in other views (the astronaut and Grace Hopper scaled, mirrored,
  tilted, in other light, JPEG-compressed). False matches and misses at each candidate person_match_distance.
- quality: the sharpness (variance of the Laplacian at 64x64 grey) of those real faces at 50, 80 and 160 px, sharp
  and blurred (Gaussian, sigma 2 px), against quality_min_sharpness; and the pitch of faces looking into the camera
  (the generic 3D face's own tilt, service/people/pose.py MODEL_PITCH_DEG).
- live CPU: one 640x480 source (25 fps, looped) with one face (the bundled sample clip) and with three faces (real
  photographs, bench's group footage), each without the people stage (before issue 32), with person_recognition off
  (landmarks only: pose and quality) and on (descriptors too), side by side in the same run (bench live_cpu's
  measure: process CPU over wall time, share of one core).
- analyze: the sample clip's analysis time (`analyze`'s own function) without and with the people stage.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

from service.config import SAMPLE_CLIP, Settings

THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6)
SIDES = (50, 80, 160)


def _scaled(image, box, face_px):
    s = face_px / max(box[2], box[3])
    return cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), tuple(v * s for v in box)


def _views(image, box):
    """Other views of one person: (name, image, box)."""
    x, y, w, h = box
    centre = (x + w / 2, y + h / 2)
    yield "smaller (0.6)", *_scaled(image, box, 0.6 * max(w, h))
    yield "smaller (0.4)", *_scaled(image, box, 0.4 * max(w, h))
    yield "mirrored", cv2.flip(image, 1), (image.shape[1] - x - w, y, w, h)
    yield "tilted 12 deg", cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, 12, 1.0), image.shape[1::-1]), box
    yield "darker", cv2.convertScaleAbs(image, alpha=0.6, beta=0), box
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 40])
    yield "jpeg q40", cv2.imdecode(jpeg, cv2.IMREAD_COLOR), box


def matching(settings: Settings) -> dict:
    from service.faces.nets import descriptor_distance
    from service.footage.held_out import FACE_API_DEMO, GROUP_FACES
    from service.footage.people import real_photos
    from service.people.registry import PersonRegistry
    from service.people.wiring import create_face_reader

    reader = create_face_reader(settings, PersonRegistry(1e9, 1e-9, 0.0))  # matches nothing: every face is new

    def describe(image, box):
        """The descriptor the reader would take at a track's confirmation; None where its gate refuses the face."""
        registry = reader.registry
        before = reader.descriptor_runs
        reader.read(image, 10_000 + before, box, 0.0)
        reader.end(10_000 + before, 0.0)
        if reader.descriptor_runs == before:
            return None
        newest = max(registry._people.values(), key=lambda p: p.person_id)
        return newest.descriptors[0]

    demo, refused = {}, []
    for name, boxes in GROUP_FACES.items():
        image = cv2.imread(str(FACE_API_DEMO / name))
        for i, box in enumerate(boxes):
            descriptor = describe(*_scaled(image, box, 120))
            (demo.setdefault(name, []) if descriptor is not None else refused).append(
                descriptor if descriptor is not None else f"{name}:{i}")
    different = [descriptor_distance(a, b) for faces in demo.values() for a, b in itertools.combinations(faces, 2)]
    same, same_names = [], []
    for photo in real_photos()[:2]:
        image, box = _scaled(photo.image, photo.face, 120)
        base = describe(image, box)
        for view, other, other_box in _views(image, box):
            descriptor = describe(other, other_box)
            if descriptor is None:
                refused.append(f"{photo.name} {view}")
                continue
            same.append(descriptor_distance(base, descriptor))
            same_names.append(f"{photo.name} {view}")
    rows = {f"{t:.2f}": {"false_matches": sum(d < t for d in different), "misses": sum(d >= t for d in same)}
            for t in THRESHOLDS}
    return {"different_pairs": len(different), "same_pairs": len(same), "thresholds": rows,
            "different_min": round(min(different), 3), "same_max": round(max(same), 3),
            "same": dict(zip(same_names, (round(d, 3) for d in same))),
            "refused_by_the_gate": [r for r in refused if isinstance(r, str)],
            "demo_people_described": sum(len(v) for v in demo.values())}


def quality(settings: Settings) -> dict:
    from service.faces.nets import LandmarkNet
    from service.footage.held_out import FACE_API_DEMO, GROUP_FACES
    from service.footage.people import real_photos
    from service.people.pose import head_pose
    from service.people.quality import sharpness

    landmark_net = LandmarkNet()
    faces = [(p.image, p.face) for p in real_photos()[:2]]
    for name, boxes in GROUP_FACES.items():
        image = cv2.imread(str(FACE_API_DEMO / name))
        faces += [(image, box) for box in boxes]
    by_side = {}
    for side in SIDES:
        sharp, blurred, pitches = [], [], []
        for image, box in faces:
            small, small_box = _scaled(image, box, side)
            sharp.append(sharpness(small, small_box))
            blurred.append(sharpness(cv2.GaussianBlur(small, (0, 0), 2.0), small_box))
            pose = head_pose(landmark_net.landmarks(small, small_box), small.shape[1], small.shape[0])
            if pose is not None:
                pitches.append(pose.pitch)
        by_side[str(side)] = {"sharp_min": min(sharp), "sharp_median": statistics.median(sharp),
                              "blurred_sigma2_median": statistics.median(blurred), "blurred_sigma2_max": max(blurred),
                              "sharp_below_threshold": sum(s < settings.quality_min_sharpness for s in sharp),
                              "blurred_at_or_above_threshold": sum(b >= settings.quality_min_sharpness
                                                                   for b in blurred),
                              "pitch_median": round(statistics.median(pitches), 1),
                              "no_pose": len(faces) - len(pitches)}
    return {"faces": len(faces), "min_sharpness": settings.quality_min_sharpness, "by_face_px": by_side}


def three_faces_clip(path: Path) -> Path:
    """Three real people (the astronaut, Grace Hopper, the astronaut mirrored and smaller) in 640x480, 25 fps, 6 s."""
    from service.footage.people import Person, group_frames
    from tests.clips import write_clip

    cast = (Person(0, 110, (150, 200), 0), Person(1, 100, (400, 170), 5), Person(0, 70, (560, 360), -5, mirror=True))
    return write_clip(path, (frame for frame, _ in group_frames(150, 25.0, cast=cast)))


@contextmanager
def without_people():
    """The face loop as it was before issue 32: no FaceReader at all."""
    with mock.patch("service.live.runtime.create_face_reader", lambda *args, **kwargs: None), \
            mock.patch("service.analyze.create_face_reader", lambda *args, **kwargs: None):
        yield


def live_cpu(settings: Settings, engine, seconds: float) -> dict:
    from bench.live_cpu import measure

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"one face": SAMPLE_CLIP, "three faces": three_faces_clip(Path(tmp) / "three.mp4")}
        for faces, clip in clips.items():
            with without_people():
                rows[f"{faces}, before (no people stage)"] = measure(clip, settings, engine, seconds)
            rows[f"{faces}, recognition off"] = measure(clip, settings.model_copy(update={"person_recognition": False}),
                                                        engine, seconds)
            rows[f"{faces}, recognition on"] = measure(clip, settings, engine, seconds)
            for name in list(rows)[-3:]:
                print(f"  {name}: process {rows[name]['cpu_percent_of_one_core']['process']}%", flush=True)
    return rows


def analyze_times(settings: Settings, engine, repeats: int = 3) -> dict:
    from service.analyze import analyze_clip
    from service.detect import create_detector

    def best(update: dict | None = None) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            analyze_clip(SAMPLE_CLIP, settings.model_copy(update=update or {}), engine, create_detector(settings))
            times.append(time.perf_counter() - start)
        return round(min(times), 3)

    with without_people():
        before = best()
    off, on = best({"person_recognition": False}), best()
    return {"clip": SAMPLE_CLIP.name, "before_s": before, "recognition_off_s": off, "recognition_on_s": on,
            "slowdown_on": round(on / before, 3)}


def run(seconds: float = 20.0) -> dict:
    from service.inference import create_engine

    settings = Settings(_env_file=None)
    engine = create_engine(settings)
    return {"matching": matching(settings), "quality": quality(settings), "seconds": seconds,
            "live_cpu": live_cpu(settings, engine, seconds), "analyze": analyze_times(settings, engine),
            "settings": {k: v for k, v in settings.model_dump().items()
                         if k.startswith(("person_", "face_landmarks", "quality_"))}}


def describe(result: dict) -> str:
    m = result["matching"]
    lines = [f"matching (face-api.js descriptors through the reader's gate): {m['different_pairs']} pairs of different "
             f"people (demo photographs, {m['demo_people_described']} of 22 described), {m['same_pairs']} pairs of one "
             f"person in other views; nearest different {m['different_min']}, farthest same {m['same_max']}; refused "
             f"by the gate: {', '.join(m['refused_by_the_gate']) or 'none'}"]
    lines += [f"  person_match_distance {t}: false matches {r['false_matches']} of {m['different_pairs']}, misses "
              f"{r['misses']} of {m['same_pairs']}" for t, r in m["thresholds"].items()]
    q = result["quality"]
    lines.append(f"quality ({q['faces']} real faces; quality_min_sharpness {q['min_sharpness']}):")
    lines += [f"  {side:>3} px: sharp min {r['sharp_min']} median {r['sharp_median']}, blurred (sigma 2) median "
              f"{r['blurred_sigma2_median']} max {r['blurred_sigma2_max']}; sharp under the threshold "
              f"{r['sharp_below_threshold']}, blurred at or over it {r['blurred_at_or_above_threshold']}; pitch median "
              f"{r['pitch_median']} (no pose {r['no_pose']})" for side, r in q["by_face_px"].items()]
    lines.append(f"live CPU, 640x480 at 25 fps, {result['seconds']:.0f} s each (% of one core):")
    for name, row in result["live_cpu"].items():
        cpu, stages = row["cpu_percent_of_one_core"], row["faces_by_stage"]
        lines.append(f"  {name:38} process {cpu['process']:5.1f}%  faces {cpu.get('faces', 0):4.1f} (read "
                     f"{stages.get('read', 0):.1f})  inference {cpu.get('inference', 0):4.1f}  capture "
                     f"{cpu.get('capture', 0):4.1f} | load {row['load_average']}")
    a = result["analyze"]
    lines.append(f"analyze {a['clip']} (best of 3): before {a['before_s']} s, recognition off "
                 f"{a['recognition_off_s']} s, on {a['recognition_on_s']} s ({a['slowdown_on']}x)")
    return "\n".join(lines)
