"""The people side built from the settings: a source's PersonRegistry (none with person_recognition off) and its
FaceReader with the embedded face-api.js nets (service/faces/nets.py)."""

from __future__ import annotations

from service.config import Settings
from service.people.quality import QualityLimits
from service.people.reader import FaceReader, ReaderSettings
from service.people.registry import PersonRegistry


def reader_settings(settings: Settings) -> ReaderSettings:
    return ReaderSettings(
        landmarks_every=settings.face_landmarks_every, descriptor_refreshes=settings.person_descriptor_refreshes,
        descriptor_every_s=settings.person_descriptor_every_s, looking_max_yaw=settings.looking_max_yaw,
        looking_max_pitch=settings.looking_max_pitch, describe_max_angle=settings.person_describe_max_angle,
        limits=QualityLimits(settings.quality_min_face_px, settings.quality_min_sharpness, settings.quality_max_yaw,
                             settings.quality_max_pitch, settings.quality_max_outside))


def create_registry(settings: Settings) -> PersonRegistry | None:
    if not settings.person_recognition:
        return None
    return PersonRegistry(settings.person_memory_s, settings.person_match_distance, settings.person_match_margin)


def create_face_reader(settings: Settings, registry: PersonRegistry | None, now: float = 0.0) -> FaceReader:
    """A reader for one face worker (or one clip): its own nets' sessions (not shared between threads), and the
    source's registry (None: recognition off; no descriptor net is even loaded)."""
    from service.faces.nets import DescriptorNet, LandmarkNet

    return FaceReader(reader_settings(settings), LandmarkNet(), DescriptorNet() if registry is not None else None,
                      registry, now)
