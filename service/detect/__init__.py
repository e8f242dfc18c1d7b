"""Face detection: one interface (FaceDetector), four backends, and the choice between them."""

from __future__ import annotations

import logging

import cv2

from service.config import Settings
from service.detect.base import Detection, FaceDetector
from service.errors import DetectorError

log = logging.getLogger(__name__)

__all__ = ["Detection", "FaceDetector", "DetectorError", "create_detector"]


def _scrfd(settings: Settings) -> FaceDetector:
    from service.detect.scrfd import ScrfdFaceDetector

    if settings.scrfd_model is None:
        raise DetectorError("detector 'scrfd' needs EMOTION_SCRFD_MODEL (a model file or pack directory)")
    return ScrfdFaceDetector(settings.scrfd_model, settings.detection_score, settings.min_face)


def _yunet(settings: Settings) -> FaceDetector:
    from service.detect.yunet import YuNetFaceDetector

    if settings.yunet_model is None:
        raise DetectorError("detector 'yunet' needs EMOTION_YUNET_MODEL (path to the YuNet .onnx file)")
    return YuNetFaceDetector(settings.yunet_model, settings.detection_score, settings.min_face,
                             settings.detect_max_side)


def _blazeface(settings: Settings) -> FaceDetector:
    from service.detect.blazeface import AutoRangeBlazeFace, BlazeFaceFaceDetector

    checks = {"max_roll": settings.face_max_roll if settings.keypoint_check else None,
              "min_face_fraction": settings.min_face_fraction, "score": settings.blazeface_score}
    if settings.blazeface_range == "auto":
        return AutoRangeBlazeFace(settings.min_face, settings.detect_threads, settings.detect_max_side, **checks)
    return BlazeFaceFaceDetector(settings.blazeface_range, min_face=settings.min_face,
                                 threads=settings.detect_threads, max_side=settings.detect_max_side, **checks)


def _haar(settings: Settings) -> FaceDetector:
    from service.detect.haar import HaarFaceDetector

    return HaarFaceDetector(settings.min_face, settings.detect_max_side)


_BUILDERS = {"blazeface": _blazeface, "scrfd": _scrfd, "yunet": _yunet, "haar": _haar}


def choose_detector(settings: Settings) -> tuple[str, str]:
    """Which backend to build and why (pure: looks only at the settings)."""
    if settings.detector != "auto":
        return settings.detector, f"detector={settings.detector} was configured"
    if settings.scrfd_model is not None:
        return "scrfd", f"SCRFD model configured at {settings.scrfd_model}"
    if settings.yunet_model is not None:  # a file the user pointed us at is what they want, as before BlazeFace
        return "yunet", f"YuNet model configured at {settings.yunet_model} (no SCRFD model configured)"
    return "blazeface", (f"the embedded BlazeFace ({settings.blazeface_range} range; no SCRFD or YuNet model "
                         "configured: EMOTION_SCRFD_MODEL, EMOTION_YUNET_MODEL)")


def apply_thread_settings(settings: Settings) -> None:
    """OpenCV's thread pool (process-wide): 1 keeps its work in the calling thread, 0 leaves OpenCV's default."""
    cv2.setNumThreads(0 if settings.opencv_threads == 1 else settings.opencv_threads or -1)


def create_detector(settings: Settings) -> FaceDetector:
    """The configured detector. A configured model file that does not exist is a DetectorError naming the path,
    never a silent fallback: the user asked for that model."""
    apply_thread_settings(settings)
    name, reason = choose_detector(settings)
    detector = _BUILDERS[name](settings)
    log.info("face detector: %s (%s)", name, reason)
    return detector
