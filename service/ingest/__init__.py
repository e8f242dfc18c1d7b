"""Where frames come from: decoded clips (every frame, nothing dropped) and sampling to sample_fps."""

from service.ingest.clip import ClipBudget, ClipDecoder, ClipInfo, ClipOverBudget, Frame, probe_clip
from service.ingest.sampling import FrameSampler

__all__ = ["ClipBudget", "ClipDecoder", "ClipOverBudget", "ClipInfo", "Frame", "FrameSampler", "probe_clip"]
