"""Raw dataset videos -> per-clip folders of face crops, in the layout the readers of models.data expect.

    python -m models.prepare SRC_DIR OUT_DIR --dataset dfew|ferv39k|mafw [--size 224] [--margin 0.2] [--align]
        [--bundle BUNDLE_DIR] [--detector auto|blazeface|scrfd|yunet|haar] [--scene-dir SCENE_DIR] [--scene-size 256]
        [--no-scene]

SRC_DIR holds the videos as distributed (DFEW: Clip/original, FERV39k: 0_7_LabelClips, MAFW: data/clips; searched
recursively). Every frame goes through the service's own face loop (service.pipeline.ClipFaces: decode, the
service's detector, tracking, crops): the largest tracked face of each frame is cropped by the crop policy (with
--bundle, exactly the one that bundle.json declares: margin, eye alignment, size; else --size, --margin, --align)
and written as OUT_DIR/<clip>/<frame>.jpg (RGB), so the crops a model trains on are made the way the service makes
them at run time; the policy is recorded in OUT_DIR/crop.json. Frames without a face are left out
(as DFEW's own crops do). Beside each crop the whole frame it was cut from (the scene context OUS reads),
downscaled to a shorter side of --scene-size (default 256; never enlarged), is written under the same name as
SCENE_DIR/<clip>/<frame>.jpg; SCENE_DIR defaults to OUT_DIR's sibling `scene` (DFEW: Clip/faces -> Clip/scene),
where the readers look for it (docs/DATASETS.md). A clip folder appears only once complete (it is written under
<clip>.partial and renamed), so an existing folder is a cached result and is skipped; an interrupted run resumes
where it stopped. A clip whose faces are cached but whose scene folder is missing (or the other way round) is
prepared again, both folders together, so that the two always pair frame for frame.

Then read it with `read_split(dataset, ROOT, ..., frames_dir=OUT_DIR)`. Clips in which no face was found are
listed in OUT_DIR/no_face.txt; pass skip_missing=True to the reader to leave them out. Exit status: 0 when every
video was prepared, cached or had no face; 1 when some could not be decoded (listed in OUT_DIR/unreadable.txt);
2 when nothing could be done (bad arguments, detector unavailable).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from pydantic import ValidationError

from models.data.layout import DatasetLayout
from models.data.splits import LAYOUTS, get_layout
from service.bundle import ModelBundle
from service.config import Settings
from service.crops import CropPolicy, declared_crop
from service.detect import create_detector
from service.errors import ClipError, ServiceError
from service.pipeline import ClipFaces, FacePipeline
from service.track import create_tracker

log = logging.getLogger("models.prepare")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
JPEG_QUALITY = 95
PARTIAL = ".partial"

# How a video's path under SRC_DIR names its clip: DFEW and MAFW by file name (00001.mp4 -> 00001), FERV39k by the
# path below 0_7_LabelClips (Action/Happy/0015.mp4 -> Action/Happy/0015), which is how their split files list them.
CLIP_NAMING: dict[str, Callable[[Path], str]] = {
    "dfew": lambda rel: rel.stem,
    "mafw": lambda rel: rel.stem,
    "ferv39k": lambda rel: rel.with_suffix("").as_posix(),
}


@dataclass
class PrepareSummary:
    prepared: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "clip: reason"
    not_clips: list[str] = field(default_factory=list)  # video files whose names are no clip of the dataset

    def line(self) -> str:
        return (f"{len(self.prepared)} prepared, {len(self.cached)} cached, {len(self.no_face)} without a face, "
                f"{len(self.unreadable)} unreadable" + (f", {len(self.not_clips)} not clips of this dataset"
                                                        if self.not_clips else ""))


def find_videos(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def scene_frame(image, size: int):
    """The whole frame (BGR) with its shorter side brought down to `size` (never enlarged)."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _write_jpeg(path: Path, bgr) -> None:
    if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"cannot write {path}")


def prepare_clip(video: Path, clip_dir: Path, clip_id: str, layout: DatasetLayout, faces: FacePipeline,
                 scene_dir: Path | None = None, scene_size: int = 256) -> int:
    """Write the face crops of one video (the largest tracked face of each frame, cropped by `faces`, a fresh
    pipeline with an RGB crop policy) into clip_dir and, with `scene_dir`, the whole frames they were cut from
    (same names) into scene_dir; returns how many frames had a face (0: nothing written). Existing folders of the
    clip are replaced only once both new ones are complete."""
    targets = [clip_dir] + ([scene_dir] if scene_dir is not None else [])
    partials = [t.with_name(t.name + PARTIAL) for t in targets]
    for partial in partials:
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted run
        partial.mkdir(parents=True)
    written = 0
    try:
        clip = ClipFaces(video, faces, sample_fps=None)  # every frame
        for frame, result in clip:
            if not result.crops:
                continue
            crop = max(result.crops, key=lambda c: c.box[2] * c.box[3]).crop  # RGB
            written += 1
            name = layout.frame_name(clip_id, written)
            _write_jpeg(partials[0] / name, cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            if scene_dir is not None:
                _write_jpeg(partials[1] / name, scene_frame(frame.image, scene_size))
    except BaseException:
        for partial in partials:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    for partial, target in zip(partials, targets):
        if written:
            shutil.rmtree(target, ignore_errors=True)  # a half-cached clip (faces without scene, or scene alone)
            partial.rename(target)
        else:
            shutil.rmtree(partial, ignore_errors=True)
    return written


def prepare(src: str | Path, out: str | Path, dataset: str, settings: Settings | None = None, size: int = 224,
            progress: bool = True, scene_out: str | Path | None = None, scene_size: int = 256,
            scene: bool = True, crop: CropPolicy | None = None) -> PrepareSummary:
    """Prepare every video under src into out, and its scene frames into scene_out (default: out's sibling
    `scene`; none when not `scene`); see the module docstring. `crop` (default: `size` px, the settings'
    face_margin, no alignment) is made RGB. Raises ServiceError (e.g. a configured detector model that is missing)
    before any work is done."""
    from tqdm import tqdm

    src, out = Path(src), Path(out)
    scene_root = (Path(scene_out) if scene_out is not None else out.parent / "scene") if scene else None
    layout = get_layout(dataset)
    if not src.is_dir():
        raise ServiceError(f"source folder {src} does not exist (expected the {layout.title} videos, e.g. "
                           f"<root>/{layout.videos_dir})")
    # Every frame with a face counts, from the first: no track confirmation delay.
    settings = (settings or Settings()).model_copy(update={"track_min_hits": 1, "tracker": "iou"})
    crop = CropPolicy(crop.size, 3, crop.margin, crop.align) if crop else CropPolicy(size, 3, settings.face_margin)
    detector = create_detector(settings)
    videos = find_videos(src)
    if not videos:
        raise ServiceError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {src}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "crop.json").write_text(json.dumps({"margin": crop.margin, "align": "eyes" if crop.align else "none",
                                               "size": crop.size, "colour": "rgb"}) + "\n")
    summary = PrepareSummary()
    bar = tqdm(videos, desc=f"{layout.title} faces", unit="clip", disable=not progress)
    for video in bar:
        rel = video.relative_to(src)
        try:
            clip_id = layout.clip_id(CLIP_NAMING[layout.name](rel))
        except ValueError:
            summary.not_clips.append(rel.as_posix())
            continue
        clip_dir = out / clip_id
        scene_dir = scene_root / clip_id if scene_root is not None else None
        if clip_dir.is_dir() and (scene_dir is None or scene_dir.is_dir()):
            summary.cached.append(clip_id)
        else:
            try:
                faces = FacePipeline(clip_id, None, settings, detector, create_tracker(settings), crop=crop)
                frames = prepare_clip(video, clip_dir, clip_id, layout, faces, scene_dir, scene_size)
            except ClipError as exc:
                summary.unreadable.append(f"{clip_id}: {exc}")
                bar.write(f"skipped {rel}: {exc}")
                continue
            (summary.prepared if frames else summary.no_face).append(clip_id)
        bar.set_postfix_str(summary.line(), refresh=False)
    for name, clips in (("no_face.txt", summary.no_face), ("unreadable.txt", summary.unreadable)):
        report = out / name
        if clips:
            report.write_text("\n".join(clips) + "\n", encoding="utf-8")
        elif report.exists():
            report.unlink()  # stale from an earlier run
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, metavar="SRC_DIR", help="folder of the dataset's raw videos")
    parser.add_argument("out", type=Path, metavar="OUT_DIR", help="where the per-clip face folders go")
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels (default 224)")
    parser.add_argument("--scene-dir", type=Path, metavar="SCENE_DIR",
                        help="where the per-clip scene (whole-frame) folders go (default: OUT_DIR/../scene)")
    parser.add_argument("--scene-size", type=int, default=256,
                        help="shorter side of the scene frames in pixels, never enlarged (default 256)")
    parser.add_argument("--no-scene", action="store_true", help="face crops only, no scene frames")
    parser.add_argument("--detector", choices=["auto", "blazeface", "scrfd", "yunet", "haar"],
                        help="face detector (default: the service's choice, EMOTION_DETECTOR)")
    parser.add_argument("--scrfd-model", type=Path, help="SCRFD .onnx file or pack directory (EMOTION_SCRFD_MODEL)")
    parser.add_argument("--yunet-model", type=Path, help="YuNet .onnx file (EMOTION_YUNET_MODEL)")
    parser.add_argument("--margin", type=float, help="face box enlarged by this fraction on each side (default 0.2)")
    parser.add_argument("--align", action="store_true", help="turn each face so the eyes are level")
    parser.add_argument("--bundle", type=Path, help="crop exactly as this bundle declares (its bundle.json `crop`: "
                        "margin, alignment, size); overrides --size, --margin, --align")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.size < 8 or args.scene_size < 8:
        parser.error("--size and --scene-size must be at least 8")
    overrides = {"detector": args.detector, "scrfd_model": args.scrfd_model, "yunet_model": args.yunet_model,
                 "face_margin": args.margin}
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
        crop = CropPolicy(args.size, 3, settings.face_margin, args.align)
        if args.bundle:
            spec = ModelBundle.load(args.bundle, verify_sha256=False).spec
            crop = declared_crop(spec.crop, spec.image_size, 3, settings.face_margin)  # stored RGB
        summary = prepare(args.src, args.out, args.dataset, settings, crop.size, progress=not args.no_progress,
                          scene_out=args.scene_dir, scene_size=args.scene_size, scene=not args.no_scene, crop=crop)
    except (ServiceError, OSError) as exc:  # OSError: e.g. the output disk is full or read-only
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    print(f"{args.out}: {summary.line()}")
    if summary.no_face:
        print(f"clips without a face are listed in {args.out / 'no_face.txt'}")
    if summary.unreadable:
        print(f"unreadable videos are listed in {args.out / 'unreadable.txt'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
