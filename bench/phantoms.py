"""Phantom faces against recall: the face loop (detector + tracker, as the service runs them) on footage from real
photographs where the true faces are known.

- nobody: service.footage.scenes.empty_scenes (landscapes, objects, textures, text, a horse, coins, galaxies, cells;
  panned and zoomed): every track there is a false one, reported per hour of footage (target 0);
- portraits: one person held still at conversation distance (exactly one track each), and the same woman in front of
  blurred building-like photographs (the scene where short range once scored a building 0.70);
- group: service.footage.people's five people (near, tilted, turned, distant); sample: the bundled clip (its face from Haar);
  sizes: one upright and one tilted face of each height, as in bench/detectors.py's face-size sweep.

Per configuration (settings overrides): false tracks per hour of nobody's footage; tracks and false tracks per
set; precision (tracked boxes on a true face / all tracked boxes) and recall (true faces in a track / all true faces,
per frame), and people found (in a track at least once) against the first configuration's (`lost`).

All of that is the footage the checks' thresholds were chosen on (the tuning footage). Held apart from it
(service/footage/held_out.py, never looked at while tuning): other photographs with nobody in them (a cat's face,
tissue, text, logos, a head phantom, ...) and 100 other people (scikit-image's LFW subset). `held_out()` runs the
checks off against the defaults there, at 640x480 and 1280x720: the figures the README reports.

    python -m bench.phantoms --held-out     # only the held-out comparison (a few minutes)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.detectors import _centre_inside
from service.config import SAMPLE_CLIP, Settings
from service.crops import CropPolicy
from service.detect import create_detector
from service.pipeline import FacePipeline
from service.track import create_tracker

# The checks off: the face loop as it was before them (BlazeFace's own least score 0.6 started tracks; the whole
# frame searched on every sampled frame, as before issue 24: the region search sees fewer phantoms, since it looks
# only near faces already found).
BEFORE = {"keypoint_check": False, "min_face_fraction": 0.0, "track_start_score": 0.0, "face_check_score": 0.0,
          "detect_every": 1, "detect_every_empty": 1, "hold_shift": 0.0}
PORTRAIT_BACKGROUNDS = ("rocket", "motorcycle", "brick", "coffee")
SIZES = (44, 52, 64, 90, 130, 200, 280)


@dataclass(frozen=True)
class Clip:
    set: str
    name: str
    frames: list
    faces: list  # per frame, true face boxes


def footage(frames: int = 24, empty_names: tuple[str, ...] | None = None, group_count: int = 40,
            clip=SAMPLE_CLIP) -> list[Clip]:
    from bench.detectors import _clip_truth
    from service.footage.people import Person, group_frames
    from service.footage.scenes import empty_scenes, portrait_before_building, portrait_stills

    clips = [Clip("nobody", s.name, s.frames, s.faces) for s in empty_scenes(frames, empty_names)]
    clips += [Clip("portraits", s.name, s.frames, s.faces) for s in portrait_stills(frames)]
    for background in PORTRAIT_BACKGROUNDS:
        s = portrait_before_building(frames, background)
        clips.append(Clip("portraits", s.name, s.frames, s.faces))
    group, boxes = zip(*group_frames(group_count))
    clips.append(Clip("group", "five people", list(group), list(boxes)))
    if clip is not None:
        sample, truth = _clip_truth(clip, Settings(_env_file=None).sample_fps)
        clips.append(Clip("sample", clip.name, sample, truth))
    for photo, tilt in ((0, 0), (1, 15)):
        for height in SIZES:
            size, faces = zip(*group_frames(8, cast=(Person(photo, height, (320, 240), tilt),)))
            clips.append(Clip("sizes", f"{height}px tilt {tilt}", list(size), list(faces)))
    return clips


def run_clip(settings: Settings, clip: Clip, detector=None) -> dict:
    """One clip through a fresh face loop (a new tracker, as for a new clip or camera)."""
    pipeline = FacePipeline("bench", None, settings, detector or create_detector(settings), create_tracker(settings),
                            crop=CropPolicy(32, 1, settings.face_margin))
    track_frames: dict[int, list[bool]] = {}
    found = [[False] * len(faces) for faces in clip.faces]
    news = 0
    for i, (frame, truth) in enumerate(zip(clip.frames, clip.faces)):
        result = pipeline.process(i / settings.sample_fps, frame)
        news += sum(e.type == "track_new" for e in result.lifecycle)
        for crop in result.crops:
            hits = [t is not None and bool(_centre_inside(crop.box, t)) for t in truth]
            track_frames.setdefault(crop.track_id, []).append(any(hits))
            found[i] = [a or b for a, b in zip(found[i], hits)]
    pipeline.finish()
    people = len(clip.faces[0]) if clip.faces else 0  # the same people in every frame; None: out of view
    return {"frames": len(clip.frames), "tracks": len(track_frames), "track_new": news,
            "false_tracks": sum(sum(v) * 2 < len(v) for v in track_frames.values()),
            "boxes": sum(map(len, track_frames.values())), "true_boxes": sum(map(sum, track_frames.values())),
            "faces": sum(t is not None for faces in clip.faces for t in faces), "faces_tracked": sum(map(sum, found)),
            "people_found": [any(f[p] for f in found) for p in range(people)
                             if any(faces[p] is not None for faces in clip.faces)]}


HELD_OUT_NOBODY, HELD_OUT_PEOPLE, HELD_OUT_GROUPS = "nobody (held out)", "people (held out)", "groups (held out)"
HELD_OUT_SETS = (HELD_OUT_NOBODY, HELD_OUT_PEOPLE, HELD_OUT_GROUPS)


def held_out_footage(frames: int = 24, people_frames: int = 16, people_clips: int = 25,
                     empty_names: tuple[str, ...] | None = None) -> list[Clip]:
    from service.footage.held_out import group_photos, group_photos_available, held_out_empty_scenes, held_out_people

    clips = [Clip(HELD_OUT_NOBODY, s.name, s.frames, s.faces) for s in held_out_empty_scenes(frames, empty_names)]
    clips += [Clip(HELD_OUT_PEOPLE, s.name, s.frames, s.faces) for s in held_out_people(people_frames, people_clips)]
    if group_photos_available():  # npm's face-api demo photographs, where installed (make faceapi-npm)
        clips += [Clip(HELD_OUT_GROUPS, s.name, s.frames, s.faces) for s in group_photos(people_frames)]
    return clips


def _rates(sets: dict, nobody: str, with_faces: tuple[str, ...], sample_fps: float) -> dict:
    """False tracks per hour of the `nobody` set; precision and recall over the sets `with_faces`."""
    empty = sets.get(nobody, {"frames": 0, "false_tracks": 0})
    hours = empty["frames"] / sample_fps / 3600
    chosen = [sets[name] for name in with_faces if name in sets] + ([empty] if nobody in sets else [])
    boxes, faces = sum(s["boxes"] for s in chosen), sum(s["faces"] for s in chosen)
    return {"nobody_hours": hours, "false_tracks_per_hour": empty["false_tracks"] / hours if hours else None,
            "precision": sum(s["true_boxes"] for s in chosen) / boxes if boxes else None,
            "recall": sum(s["faces_tracked"] for s in chosen) / faces if faces else None}


def run_config(settings: Settings, clips: list[Clip]) -> dict:
    detector = create_detector(settings)
    cpu = time.process_time()
    per_clip = {f"{c.set}: {c.name}": run_clip(settings, c, detector) for c in clips}
    cpu = time.process_time() - cpu
    sets = {}
    for clip in clips:
        row = per_clip[f"{clip.set}: {clip.name}"]
        total = sets.setdefault(clip.set, {"clips": 0, "frames": 0, "tracks": 0, "false_tracks": 0, "boxes": 0,
                                           "true_boxes": 0, "faces": 0, "faces_tracked": 0, "clips_one_track": 0})
        total["clips"] += 1
        total["clips_one_track"] += row["tracks"] == 1 and row["false_tracks"] == 0
        for key in ("frames", "tracks", "false_tracks", "boxes", "true_boxes", "faces", "faces_tracked"):
            total[key] += row[key]
    tuning = tuple(name for name in sets if name not in HELD_OUT_SETS)
    return {"sets": sets, "clips": per_clip, "cpu_ms_per_frame": 1000 * cpu / sum(len(c.frames) for c in clips),
            **_rates(sets, "nobody", tuning, settings.sample_fps),  # the tuning footage
            "held_out": _rates(sets, HELD_OUT_NOBODY, (HELD_OUT_PEOPLE, HELD_OUT_GROUPS), settings.sample_fps),
            "held_out_sets": {name: _rates(sets, "", (name,), settings.sample_fps) for name in HELD_OUT_SETS[1:]
                              if name in sets}}


def compare(configs: dict[str, dict], clips: list[Clip]) -> dict:
    """Every configuration on the same footage; `lost`: people the first configuration found (in a track at least
    once in their clip) that this one does not, by clip."""
    results = {name: run_config(Settings(_env_file=None, **overrides), clips) | {"settings": overrides}
               for name, overrides in configs.items()}
    reference = next(iter(results.values()))["clips"]
    for result in results.values():
        result["lost"] = {name: sum(r and not a for r, a in zip(reference[name]["people_found"], row["people_found"]))
                          for name, row in result["clips"].items()}
        result["lost"] = {k: v for k, v in result["lost"].items() if v}
    return results


# The checks off against the defaults, then each check alone and the thresholds on either side of each default
# (docs/DETECTION.md reads its choices off these rows).
def sweep_configs() -> dict[str, dict]:
    defaults = Settings(_env_file=None)
    return {"before (checks off)": BEFORE, "after (defaults)": {},
            "keypoints only": BEFORE | {"keypoint_check": True},
            "face check only": BEFORE | {"face_check_score": defaults.face_check_score},
            "track_start_score 0.75 only": BEFORE | {"track_start_score": 0.75},
            "face_check_score 0.5": {"face_check_score": 0.5}, "face_check_score 0.7": {"face_check_score": 0.7},
            "face_check_scale 2.2": {"face_check_scale": 2.2},
            "blazeface_score 0.5 (continue below start)": {"blazeface_score": 0.5}}


def scaled(clips: list[Clip], size: tuple[int, int]) -> list[Clip]:
    """The clips scaled up to a webcam HD frame (range auto then runs short and full range both)."""
    import cv2

    out = []
    for clip in clips:
        sx, sy = size[0] / clip.frames[0].shape[1], size[1] / clip.frames[0].shape[0]
        out.append(Clip(clip.set, clip.name, [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in clip.frames],
                        [[None if box is None else (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
                          for box in faces] for faces in clip.faces]))
    return out


HD_SIZES = ((1280, 720), (1280, 960))  # most USB webcams; range auto runs short and full range both there


def run(frames: int = 24, configs: dict[str, dict] | None = None,
        hd: tuple[tuple[int, int], ...] = HD_SIZES) -> dict:
    """The sweep on 640x480 footage; then, at each `hd` size, the checks off against the defaults on all of it
    scaled up (nobody's footage for false tracks, the rest for recall)."""
    clips = footage(frames)
    sets = dict.fromkeys(c.set for c in clips)
    result = {"configs": compare(configs or sweep_configs(), clips),
              "footage": {s: sum(len(c.frames) for c in clips if c.set == s) for s in sets}}
    result["hd"] = {f"{w}x{h}": compare({"before (checks off)": BEFORE, "after (defaults)": {}}, scaled(clips, (w, h)))
                    for w, h in hd}
    result["held_out"] = held_out(frames)  # the figures to report: footage no threshold was chosen on
    return result


def held_out(frames: int = 24, sizes: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720))) -> dict:
    """The checks off against the defaults on the held-out footage, at each size."""
    clips = held_out_footage(frames)
    configs = {"before (checks off)": BEFORE, "after (defaults)": {}}
    return {"footage": {s: sum(len(c.frames) for c in clips if c.set == s) for s in HELD_OUT_SETS},
            "sizes": {f"{w}x{h}": compare(configs, clips if (w, h) == (640, 480) else scaled(clips, (w, h)))
                      for w, h in sizes}}


def describe_held_out(result: dict) -> list[str]:
    lines = [f"held-out footage (frames at 8 fps): {result['footage']}",
             "size | config | false tracks per hour of nobody | precision | recall | recall per set | people found "
             "per set | CPU ms per frame"]
    for size, configs in result["sizes"].items():
        for name, r in configs.items():
            h = r["held_out"]
            recall = ", ".join(f"{s.split()[0]} {v['recall']:.3f}" for s, v in r["held_out_sets"].items())
            found = ", ".join(
                f"{s.split()[0]} {sum(sum(row['people_found']) for k, row in r['clips'].items() if k.startswith(s))}"
                f" of {sum(len(row['people_found']) for k, row in r['clips'].items() if k.startswith(s))}"
                for s in r["held_out_sets"])
            lines.append(f"  {size} | {name} | {h['false_tracks_per_hour']:.0f} | {h['precision']:.3f} | "
                         f"{h['recall']:.3f} | {recall} | {found} | {r['cpu_ms_per_frame']:.1f}")
    return lines


def describe(result: dict) -> str:
    if "sizes" in result:  # held_out()
        return "\n".join(describe_held_out(result))
    lines = [f"tuning footage (frames at 8 fps): {result['footage']}",
             "config | false tracks per hour of nobody | precision | recall | per set: tracks (false) | portraits "
             "with exactly one track | people lost against the first row | CPU ms per frame"]
    for name, r in result["configs"].items():
        sets = r["sets"]
        per_set = ", ".join(f"{s} {v['tracks']} ({v['false_tracks']})" for s, v in sets.items())
        portraits = sets.get("portraits", {})
        lines.append(f"  {name} | {r['false_tracks_per_hour']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{per_set} | {portraits.get('clips_one_track', 0)} of {portraits.get('clips', 0)} | "
                     f"{sum(r['lost'].values())} {list(r['lost'])[:3]} | {r['cpu_ms_per_frame']:.1f}")
    for frame, configs in result.get("hd", {}).items():
        lines.append(f"the same footage at {frame} (range auto: short and full range):")
        lines += [f"  {name} | {r['false_tracks_per_hour']:.0f} false tracks per hour | precision {r['precision']:.3f} "
                  f"| recall {r['recall']:.3f} | people lost {sum(r['lost'].values())} | {r['cpu_ms_per_frame']:.1f} ms"
                  for name, r in configs.items()]
    if "held_out" in result:
        lines += describe_held_out(result["held_out"])
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse
    import logging

    from bench.machine import machine_facts, save

    parser = argparse.ArgumentParser(prog="python -m bench.phantoms", description="phantom faces against recall")
    parser.add_argument("--held-out", action="store_true", help="only the held-out footage: checks off vs defaults")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    facts = machine_facts()
    print(f"machine: {facts['cpu']}, {facts['cores']} cores, {facts['date']}")
    outcome = held_out() if args.held_out else run()
    print(describe(outcome))
    print(f"  -> {save('phantoms-held-out' if args.held_out else 'phantoms', outcome)}")
