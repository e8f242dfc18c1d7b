"""All service settings in one pydantic-settings object (environment variables prefixed EMOTION_, or a .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_BUNDLE = ASSETS_DIR / "bundles" / "fer-mini-xception"
SAMPLE_CLIP = ASSETS_DIR / "samples" / "astronaut.mp4"

DetectorName = Literal["auto", "scrfd", "yunet", "haar"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMOTION_", env_file=".env", env_ignore_empty=True, extra="ignore")

    # Model
    model: Path = Field(DEFAULT_BUNDLE, description="model bundle directory (model.onnx + bundle.json)")
    providers: list[str] | None = Field(
        None, description="ONNX Runtime execution providers in order of preference; default: best available")
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime threads (0: ONNX Runtime decides)")
    max_batch: int = Field(8, ge=1, description="most windows in one inference call")

    # Sampling and windows
    sample_fps: float = Field(8.0, gt=0, description="frames per second taken from the source (16 frames ~ 2 s)")
    hop: int = Field(8, ge=1, description="sampled frames between two windows of the same track")

    # Face detection
    detector: DetectorName = Field("auto", description="auto: SCRFD if configured, else YuNet if configured, else Haar")
    scrfd_model: Path | None = Field(None, description="SCRFD .onnx file, or a directory holding det_10g.onnx / det_500m.onnx")
    yunet_model: Path | None = Field(None, description="OpenCV YuNet .onnx file (face_detection_yunet_2023mar.onnx)")
    detection_score: float = Field(0.5, ge=0, le=1, description="minimum detector score (SCRFD, YuNet)")
    min_face: int = Field(40, ge=8, description="smallest face side in pixels")
    detect_max_side: int = Field(640, ge=64, description="frames are downscaled to this longest side for detection")

    # Tracking
    track_iou: float = Field(0.3, gt=0, lt=1, description="least IoU to continue a track")
    track_max_missed: int = Field(8, ge=0, description="sampled frames a track survives without a detection")
    track_min_hits: int = Field(3, ge=1, description="consecutive detections before a face becomes a track")

    # Crops
    face_margin: float = Field(0.2, ge=0, description="square face box enlarged by this fraction on each side")

    # Input limits
    max_clip_seconds: float = Field(600.0, gt=0, description="longer clips are refused")
