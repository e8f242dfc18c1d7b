"""OpenCV's YuNet face detector (cv2.FaceDetectorYN) from a local .onnx file: fast, with 5 landmarks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from service.detect.base import Detection, FaceDetector, as_bgr, downscale, rescale
from service.errors import DetectorError

HOW_TO_GET = ("download face_detection_yunet_2023mar.onnx from the OpenCV model zoo "
              "(opencv/opencv_zoo, models/face_detection_yunet) and set EMOTION_YUNET_MODEL to its path")


class YuNetFaceDetector(FaceDetector):
    name = "yunet"

    def __init__(self, model: Path, score: float = 0.5, min_face: int = 40, max_side: int = 640):
        model = Path(model)
        if not model.is_file():
            raise DetectorError(f"YuNet model file not found: {model} ({HOW_TO_GET})")
        try:
            self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score, 0.3, 5000)
        except cv2.error as exc:
            raise DetectorError(f"cannot load YuNet model {model}: {exc.msg.strip() if hasattr(exc, 'msg') else exc}") from None
        self.min_face, self.max_side = min_face, max_side

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = as_bgr(image)
        if not image.size:
            return []
        small, scale = downscale(image, self.max_side)
        self._net.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self._net.detect(small)
        found = []
        for row in rows if rows is not None else []:
            det = rescale(Detection(tuple(map(float, row[:4])), float(row[14]),
                                    tuple((float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5))), scale)
            if min(det.box[2], det.box[3]) >= self.min_face:
                found.append(det)
        found.sort(key=lambda d: d.score, reverse=True)
        return found
