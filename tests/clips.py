"""Test and sample clips made from a real photograph (scikit-image's astronaut, NASA, public domain).

A real face, not a drawn one, so the detector and the emotion model see what they see in use. The camera pans and
zooms slowly so that tracking has motion to follow. `python -m tests.clips OUT.mp4` writes the bundled sample clip.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import av
import cv2
import numpy as np


def astronaut_bgr() -> np.ndarray:
    from skimage import data  # the photograph ships inside the scikit-image wheel

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def pan_zoom_frames(image: np.ndarray, size=(640, 480), fps: float = 25.0, seconds: float = 4.0):
    """Frames of a slow pan and zoom over `image` (BGR), output size (w, h)."""
    out_w, out_h = size
    h, w = image.shape[:2]
    aspect = out_h / out_w
    n = round(fps * seconds)
    for i in range(n):
        phase = 0.5 - 0.5 * math.cos(2 * math.pi * i / max(1, n - 1))  # 0 -> 1 -> 0
        crop_w = w * (1.0 - 0.25 * phase)
        crop_h = min(h, crop_w * aspect)
        cx = w / 2 - 0.06 * w * phase
        cy = crop_h / 2 + 0.05 * h * phase
        x0 = int(np.clip(cx - crop_w / 2, 0, w - crop_w))
        y0 = int(np.clip(cy - crop_h / 2, 0, h - crop_h))
        crop = image[y0:y0 + int(crop_h), x0:x0 + int(crop_w)]
        yield cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def write_clip(path: str | Path, frames, fps: float = 25.0, codec: str = "libx264") -> Path:
    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=round(fps))
                stream.width, stream.height = image.shape[1], image.shape[0]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": "26", "preset": "medium"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


def astronaut_clip(path: str | Path, size=(640, 480), fps: float = 25.0, seconds: float = 4.0) -> Path:
    return write_clip(path, pan_zoom_frames(astronaut_bgr(), size, fps, seconds), fps)


def blank_clip(path: str | Path, size=(320, 240), fps: float = 25.0, seconds: float = 2.5) -> Path:
    """A clip with no face in it: a grey gradient that drifts."""
    w, h = size
    ramp = np.tile(np.linspace(40, 200, w, dtype=np.float32), (h, 1))
    frames = (np.repeat(np.roll(ramp, 4 * i, axis=1)[:, :, None], 3, axis=2).astype(np.uint8)
              for i in range(round(fps * seconds)))
    return write_clip(path, frames, fps)


if __name__ == "__main__":
    out = astronaut_clip(sys.argv[1] if len(sys.argv) > 1 else "astronaut.mp4", seconds=6.0)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
