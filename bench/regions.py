"""What searching around known faces costs and loses (detect_every, detect_every_empty, hold_shift,
service/detect/regions.py; and min_face_fraction at HD), on footage from real photographs (service.footage):

- found: bench.phantoms' footage (nobody, portraits, the group of five, the sample clip, faces of 44-280 px) at
  640x480 and scaled to 1280x720: false tracks, precision, recall, recall of faces of 64 px or more, people lost
  against the first configuration (the whole frame every time, min_face alone), and the face loop's CPU per sampled
  frame;
- arrival: a person who steps into an empty view (detect_every_empty), or beside a person already followed
  (detect_every), `offset` sampled frames after the first one (every phase of the whole-frame passes): sampled
  frames from her first frame to the frame her track is confirmed (track_new);
- motion: one face crossing the frame at a steady speed: share of frames (after her confirmation) in which the loop
  follows her, and tracks made (1 when she is followed as one person).
"""

from __future__ import annotations

from bench.detectors import _centre_inside
from bench.phantoms import Clip, compare, footage, scaled
from service.config import Settings
from service.crops import CropPolicy
from service.detect import create_detector
from service.pipeline import FacePipeline
from service.track import create_tracker

# detect_every, detect_every_empty and hold_shift around the defaults (8, 4, 0.04).
CONFIGS = {"whole frame always": {"detect_every": 1, "detect_every_empty": 1, "hold_shift": 0.0},
           "every 4, no hold": {"detect_every": 4, "detect_every_empty": 4, "hold_shift": 0.0},
           "every 8, empty 4, no hold": {"hold_shift": 0.0},
           "defaults (every 8, empty 4, hold 0.04)": {},
           "every 16, empty 8": {"detect_every": 16, "detect_every_empty": 8}}
BEFORE = CONFIGS["whole frame always"] | {"min_face_fraction": 0.0}  # issue 24's starting point
BIG_FACE = 64  # px: the "a person about 2.5 m from a typical webcam"
SPEEDS = (0, 160, 320, 480, 640)  # px/s of the face centre at 640x480 (640: across the frame in a second)


def _loop(settings: Settings) -> FacePipeline:
    return FacePipeline("bench", None, settings, create_detector(settings), create_tracker(settings),
                        crop=CropPolicy(32, 1, settings.face_margin))


def _people_frames(centres: list[tuple[float, float] | None], companion: tuple[float, float] | None = None,
                   face_height: float = 90.0) -> Clip:
    """A person (the first of the packaged photographs) at each centre, or nobody there (None), on the group's
    backdrop; `companion`: a second person (another photograph) standing there all along. True faces: the first
    person's."""
    from service.footage.people import Person, group_frames

    frames, faces = [], []
    for centre in centres:
        cast = (() if centre is None else (Person(0, face_height, centre, 0),))
        cast += (() if companion is None else (Person(2, face_height, companion, 0),))
        ((frame, boxes),) = group_frames(1, cast=cast)
        frames.append(frame)
        faces.append([b for b, person in zip(boxes, sorted(cast, key=lambda p: p.face_height)) if person.photo == 0])
    return Clip("person", "", frames, faces)


def arrival(overrides: dict, fps: float, beside: bool) -> dict:
    """`beside`: someone else (another photograph, left of the frame) is followed from the first frame on."""
    settings = Settings(_env_file=None, **overrides)
    phases = max(settings.detect_every if beside else settings.detect_every_empty, 1)
    delays = []
    for offset in range(phases):
        centres = [None] * offset + [(440.0, 220.0)] * (phases + 6)
        clip = _people_frames(centres, (150.0, 200.0) if beside else None)
        pipeline = _loop(settings)
        # Her track_new: the one whose box lies right of the frame's middle (the companion stands left of it).
        news = [any(e.type == "track_new" and e.box[0] + e.box[2] / 2 > 320
                    for e in pipeline.process(i / fps, f).lifecycle) for i, f in enumerate(clip.frames)]
        confirmed = next((i for i, new in enumerate(news) if new), None)
        delays.append(None if confirmed is None else confirmed - offset)
    known = [d for d in delays if d is not None]
    return {"delays_frames": delays, "never": len(delays) - len(known),
            "mean_s": round(sum(known) / len(known) / fps, 3) if known else None,
            "worst_s": round(max(known) / fps, 3) if known else None}


def motion(overrides: dict, speed: float, fps: float, seconds: float = 3.0) -> dict:
    """The face's centre from x=60 to x=580 (it stays inside the frame) at `speed` px/s, at most `seconds`."""
    count = round(min(seconds, 520 / speed) * fps) if speed else round(seconds * fps)
    clip = _people_frames([(60.0 + speed * i / fps, 220.0) for i in range(count)])
    pipeline = _loop(Settings(_env_file=None, **overrides))
    followed, tracks, confirmed_at = [], set(), None
    for i, (frame, truth) in enumerate(zip(clip.frames, clip.faces)):
        result = pipeline.process(i / fps, frame)
        if confirmed_at is None and any(e.type == "track_new" for e in result.lifecycle):
            confirmed_at = i
        tracks |= {c.track_id for c in result.crops}
        if confirmed_at is not None:
            followed.append(any(_centre_inside(c.box, truth[0]) for c in result.crops))
    return {"frames": count, "confirmed_at": confirmed_at,
            "followed": round(sum(followed) / len(followed), 3) if followed else 0.0, "tracks": len(tracks)}


def found(clips: list[Clip]) -> dict:
    result = compare({"before (whole frame always, min_face alone)": BEFORE} | CONFIGS, clips)
    for row in result.values():
        row["recall_big"] = _big_face_recall(row, clips)
    return result


def _big_face_recall(row: dict, clips: list[Clip]) -> float | None:
    """Recall over the clips whose true faces are all BIG_FACE px or more (the portraits, the sample clip, the
    sizes from 64 px; the group mixes sizes and is left out)."""
    faces = tracked = 0
    for clip in clips:
        heights = [h for frame in clip.faces for _, _, _, h in frame]
        if clip.set == "nobody" or not heights or min(heights) < BIG_FACE:
            continue
        r = row["clips"][f"{clip.set}: {clip.name}"]
        faces, tracked = faces + r["faces"], tracked + r["faces_tracked"]
    return round(tracked / faces, 3) if faces else None


def run(frames: int = 24) -> dict:
    fps = Settings(_env_file=None).sample_fps
    clips = footage(frames)
    result = {"found": {"640x480": found(clips)}}
    result["found"]["1280x720"] = found(scaled(clips, (1280, 720)))
    result["arrival"] = {name: {"into an empty view": arrival(o, fps, False), "beside someone": arrival(o, fps, True)}
                         for name, o in CONFIGS.items()}
    result["motion"] = {name: {s: motion(o, s, fps) for s in SPEEDS} for name, o in CONFIGS.items()}
    return result


def describe(result: dict) -> str:
    lines = ["where the detector looks (detect_every, detect_every_empty, hold_shift): found on bench.phantoms' "
             "footage | false tracks per hour | "
             f"precision | recall | recall of faces >= {BIG_FACE} px | people lost vs the first row | face loop CPU "
             "ms per sampled frame"]
    for size, rows in result["found"].items():
        lines.append(f"  {size}:")
        for name, r in rows.items():
            lines.append(f"    {name} | {r['false_tracks_per_hour']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                         f"{r['recall_big']} | {sum(r['lost'].values())} | {r['cpu_ms_per_frame']:.1f}")
    lines.append("  arrival (sampled frames from a person's first frame to her track_new, one per phase of the "
                 "whole-frame passes; mean, worst):")
    for name, cases in result["arrival"].items():
        for case, r in cases.items():
            lines.append(f"    {name}, {case}: {r['delays_frames']} mean {r['mean_s']} s, worst {r['worst_s']} s")
    lines.append("  motion (a 90 px face crossing a 640x480 frame; share of frames followed after confirmation, "
                 "tracks):")
    for name, speeds in result["motion"].items():
        lines.append(f"    {name}: " + ", ".join(f"{s} px/s {r['followed']} ({r['tracks']})"
                                               for s, r in speeds.items()))
    return "\n".join(lines)
