"""insightface's SCRFD detector from a local model file (buffalo_l's det_10g.onnx or buffalo_s's det_500m.onnx).

Loaded through insightface.model_zoo from a path: FaceAnalysis(name=...) would try to download its pack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.detect.base import Detection, FaceDetector, as_bgr
from service.errors import DetectorError

MODEL_FILES = ("det_10g.onnx", "det_500m.onnx", "scrfd_10g_bnkps.onnx", "scrfd_2.5g_bnkps.onnx", "scrfd_500m_bnkps.onnx")
HOW_TO_GET = ("unpack an insightface model pack (e.g. buffalo_l.zip from the insightface releases) and set "
              "EMOTION_SCRFD_MODEL to the directory or to its det_10g.onnx")


def resolve_model_file(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in MODEL_FILES:
            if (path / name).is_file():
                return path / name
        raise DetectorError(f"no SCRFD model ({', '.join(MODEL_FILES)}) in directory {path} ({HOW_TO_GET})")
    if not path.is_file():
        raise DetectorError(f"SCRFD model not found: {path} ({HOW_TO_GET})")
    return path


class ScrfdFaceDetector(FaceDetector):
    name = "scrfd"
    searches_crops_cheaply = False  # insightface scales every image to the fixed input_size

    def __init__(self, model: Path, score: float = 0.5, min_face: int = 40, input_size: int = 640,
                 providers: list[str] | None = None):
        model_file = resolve_model_file(model)
        try:
            from insightface.model_zoo import model_zoo
        except ImportError:
            raise DetectorError("SCRFD needs the insightface package: pip install 'emotion-perception[insightface]'") from None
        self._model = model_zoo.get_model(str(model_file), providers=providers or ["CPUExecutionProvider"])
        if self._model is None or getattr(self._model, "taskname", None) != "detection":
            raise DetectorError(f"{model_file} is not an SCRFD detection model")
        self._model.prepare(ctx_id=-1, det_thresh=score, input_size=(input_size, input_size))
        self.min_face = min_face

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_bgr(image)
        if not image.size:
            return []
        boxes, keypoints = self._model.detect(image)
        found = []
        for i, (x1, y1, x2, y2, score) in enumerate(boxes):
            if min(x2 - x1, y2 - y1) < self.min_face:
                continue
            landmarks = tuple(map(tuple, keypoints[i].tolist())) if keypoints is not None else None
            found.append(Detection((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), float(score), landmarks))
        return found
