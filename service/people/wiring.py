"""The people side built from the settings: a source's PersonRegistry (none with person_recognition off) and its
FaceReader with the embedded face-api.js nets (service/faces/nets.py)."""

from __future__ import annotations

import threading

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


# A clip worker's nets, loaded on its first clip and kept: analysing clip after clip it would else load them for
# every clip (the descriptor net's session takes 0.1-0.15 s, a seventh of a 6-s clip's analysis).
_thread_nets = threading.local()


def thread_nets(describe: bool) -> tuple:
    """The calling thread's (LandmarkNet, DescriptorNet or None), made on first use."""
    from service.faces.nets import DescriptorNet, LandmarkNet

    if getattr(_thread_nets, "landmarks", None) is None:
        _thread_nets.landmarks = LandmarkNet()
    if describe and getattr(_thread_nets, "descriptors", None) is None:
        _thread_nets.descriptors = DescriptorNet()
    return _thread_nets.landmarks, _thread_nets.descriptors if describe else None


def create_face_reader(settings: Settings, registry: PersonRegistry | None, now: float = 0.0,
                       nets: tuple | None = None) -> FaceReader:
    """A reader for one face worker (or one clip), and the source's registry (None: recognition off; no descriptor
    net is loaded for it). `nets`: (landmarks, descriptors) to use, such as the clip thread's `thread_nets`; by
    default its own new sessions (a face worker is made on another thread than the one it runs on, so it cannot
    take that thread's)."""
    if nets is None:
        from service.faces.nets import DescriptorNet, LandmarkNet

        nets = LandmarkNet(), DescriptorNet() if registry is not None else None
    return FaceReader(reader_settings(settings), *nets, registry, now)
