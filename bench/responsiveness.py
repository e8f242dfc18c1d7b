"""How fast the published label follows a change of expression, and whether it flickers: one real face (service/
footage/expressions.py) happy, surprised at 4 s, happy at 8 s, surprised at 12 s, 640x480 at 25 fps with sway and
noise, written to H.264 and analysed as an upload is (service.analyze, the same EmotionStage as live). Lag: from a
cut to the end of the first window whose published (smoothed) label is the new expression (capture time; add the
frame-to-event latency for wall time). Flicker: published events inside a steady stretch (from `settle_s` after a
change to the next one) whose label is not the expression shown."""

from __future__ import annotations

import tempfile
from pathlib import Path

from service.analyze import analyze_clip
from service.config import Settings
from service.detect import create_detector
from service.events import EmotionEvent
from service.footage.expressions import CUTS, expression_at, expression_frames
from service.inference import create_engine

SETTLE_S = 1.5  # the promise: the new label within 1.5 s of a cut, and nothing else from then on
SECONDS, FPS = 16.0, 25.0
# Defaults before issue 24 first, then today's defaults and the neighbours of each new setting, so the table shows
# why the defaults are what they are.
VARIANTS = {
    "before (hop 8, span 16, ema 0.5)": dict(hop=8, window_span=16, smoothing="ema"),
    "defaults": {},
    "switch_s 0.25": dict(switch_s=0.25),
    "switch_s 1.0": dict(switch_s=1.0),
    "hop 1": dict(hop=1),
    "hop 4": dict(hop=4),
    "span 8": dict(window_span=8),
    "span 2": dict(window_span=2),
    "no smoothing": dict(smoothing="none"),
}


def expression_clip(path: Path, seconds: float = SECONDS, fps: float = FPS, cuts=CUTS) -> Path:
    from tests.clips import write_clip  # the one H.264 writer of the repository's footage

    return write_clip(path, (frame for frame, _ in expression_frames(seconds, fps, cuts=cuts)), fps)


def label_figures(events: list, cuts=CUTS, settle_s: float = SETTLE_S, end: float = SECONDS) -> dict:
    """Lag after each cut and flicker inside each steady stretch, from a clip's emotion events (one face)."""
    emotions = sorted((e for e in events if isinstance(e, EmotionEvent)), key=lambda e: e.t_end)
    lags = []
    for cut in cuts:
        shown = expression_at(cut, cuts)
        hit = next((e.t_end for e in emotions if e.t_end >= cut and e.label == shown), None)
        lags.append(None if hit is None else round(hit - cut, 3))
    flicker, steady = [], 0
    starts = (0.0,) + tuple(cuts)
    for start, stop in zip(starts, tuple(cuts) + (end,)):
        inside = [e for e in emotions if start + settle_s <= e.t_end < stop]
        steady += len(inside)
        flicker += [(e.t_end, e.label) for e in inside if e.label != expression_at(start, cuts)]
    span = end - emotions[0].t_end if emotions else 0.0
    return {"lags_s": lags, "max_lag_s": max((x for x in lags if x is not None), default=None),
            "missed": sum(x is None for x in lags), "flicker": len(flicker), "flicker_at": flicker[:5],
            "steady_events": steady, "events": len(emotions),
            "events_per_s": round(len(emotions) / span, 2) if span > 0 else 0.0}


def measure(settings: Settings, clip: Path, engine=None) -> dict:
    engine = engine or create_engine(settings)
    report = analyze_clip(clip, settings, engine, create_detector(settings), progress=False)
    return label_figures(report.events)


def run() -> dict:
    base = Settings(_env_file=None)
    engine = create_engine(base)
    with tempfile.TemporaryDirectory() as tmp:
        clip = expression_clip(Path(tmp) / "expressions.mp4")
        rows = {name: measure(base.model_copy(update=changes), clip, engine) for name, changes in VARIANTS.items()}
    return {"model": engine.spec.name, "cuts": list(CUTS), "settle_s": SETTLE_S, "rows": rows}


def describe(result: dict) -> str:
    lines = [f"responsiveness ({result['model']}, cuts at {result['cuts']} s; lag = cut to first window with the new "
             f"published label; flicker = other labels from {result['settle_s']} s after a change):",
             f"  {'settings':34} {'lags after cuts (s)':24} {'max':>5} {'flicker':>7} {'events/s':>8}"]
    for name, row in result["rows"].items():
        lags = ", ".join("miss" if x is None else f"{x:.2f}" for x in row["lags_s"])
        worst = "miss" if row["missed"] else f"{row['max_lag_s']:.2f}"
        lines.append(f"  {name:34} {lags:24} {worst:>5} {row['flicker']:>7} {row['events_per_s']:>8}")
    return "\n".join(lines)
