"""How cost grows with the number of faces in view: frames with 1, 2, 3 and 4 copies of a real face, through the
per-frame stages (detect, track, crop, window buffers) and one batched inference call for their windows."""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from service.config import SAMPLE_CLIP, Settings
from service.detect import create_detector
from service.inference import create_engine
from service.ingest import ClipDecoder
from service.pipeline import FacePipeline
from service.track import create_tracker


def frame_with_faces(face_frame: np.ndarray, count: int, size=(640, 480)) -> np.ndarray:
    """A 640x480 frame with `count` copies of a face image side by side (a row of people)."""
    w, h = size
    canvas = np.full((h, w, 3), 200, np.uint8)
    tile_w = w // max(count, 1)
    tile = cv2.resize(face_frame, (tile_w, int(tile_w * face_frame.shape[0] / face_frame.shape[1])))
    tile = tile[:h]
    for i in range(count):
        canvas[(h - tile.shape[0]) // 2:(h - tile.shape[0]) // 2 + tile.shape[0], i * tile_w:(i + 1) * tile_w] = tile
    return canvas


def run(counts=(1, 2, 3, 4), frames: int = 24) -> dict:
    settings = Settings(_env_file=None)
    engine = create_engine(settings)
    # A portrait crop of the sample's first frame: one face, tiled `count` times.
    first = next(iter(ClipDecoder(SAMPLE_CLIP))).image
    face = first[:, 120:520]
    rows = []
    for count in counts:
        image = frame_with_faces(face, count)
        pipeline = FacePipeline("bench", engine.spec, settings, create_detector(settings), create_tracker(settings))
        per_frame, windows = [], []
        for i in range(frames):
            started = time.perf_counter()
            result = pipeline.process(i / settings.sample_fps, image)
            per_frame.append(time.perf_counter() - started)
            windows.extend(result.windows)
        found = len(pipeline.last_faces)
        batch = np.stack([w.faces for w in windows[:count]]) if windows else None
        infer = []
        if batch is not None:
            for _ in range(5):
                started = time.perf_counter()
                engine.predict(batch)
                infer.append(time.perf_counter() - started)
        rows.append({"faces_in_frame": count, "faces_tracked": found,
                     "frame_ms_median": 1000 * statistics.median(per_frame[3:]),
                     "infer_batch": 0 if batch is None else len(batch),
                     "infer_ms_median": 1000 * statistics.median(infer) if infer else None})
    return {"model": engine.spec.name, "detector": settings.detector, "rows": rows}


def describe(result: dict) -> str:
    lines = [f"faces in view ({result['model']}): faces | tracked | per sampled frame | one inference of their windows"]
    for r in result["rows"]:
        infer = f"{r['infer_ms_median']:.1f} ms (batch {r['infer_batch']})" if r["infer_ms_median"] else "-"
        lines.append(f"  {r['faces_in_frame']} | {r['faces_tracked']} | {r['frame_ms_median']:.1f} ms | {infer}")
    return "\n".join(lines)
