"""The result of analysing a clip: a pydantic report (the CLI's --json and the REST answer), a printed timeline,
and a plot of each track's label probabilities over time."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from service.events import EmotionEvent, Event


class TrackSummary(BaseModel):
    track_id: int
    t_first: float
    t_last: float
    windows: int
    dominant_label: str | None = Field(description="label with the highest mean probability over its windows "
                                       "(windows whose label is uncertain left out, where any other is there)")
    person_id: int | None = Field(None, description="who the track's face is (the same person's tracks share it)")


class UncertainSpan(BaseModel):
    """Consecutive emotion events of a track whose label is not to be trusted, for one reason."""

    track_id: int
    person_id: int | None = None
    t_start: float
    t_end: float
    reason: str = Field(description="the events' uncertain_reason")
    events: int


class ClipReport(BaseModel):
    source: str
    model: str
    labels: list[str]
    detector: str
    width: int
    height: int
    source_fps: float
    duration: float = Field(description="seconds of video decoded")
    frames_decoded: int
    frames_sampled: int
    sample_fps: float
    tracks: list[TrackSummary]
    events: list[Event]
    uncertain_spans: list[UncertainSpan] = Field(default_factory=list, description="where a face could not be read "
                                                 "(its labels are not to be trusted), per track and reason")
    stages: dict[str, dict[str, float]] = Field(default_factory=dict, description="per-stage time, this run")
    warnings: list[str] = Field(default_factory=list)

    @property
    def emotions(self) -> list[EmotionEvent]:
        return [e for e in self.events if isinstance(e, EmotionEvent)]


def summarise_tracks(events: list, labels: list[str]) -> list[TrackSummary]:
    """Per track: when it was seen, who it is and its dominant label (pure); uncertain windows count only for a
    track that has no other."""
    spans: dict[int, list[float]] = {}
    persons: dict[int, int | None] = {}
    sums: dict[tuple[int, bool], dict[str, float]] = {}
    counts: dict[int, int] = {}
    for event in events:
        if event.type in ("track_new", "track_lost"):
            span = spans.setdefault(event.track_id, [event.t, event.t])
            span[0], span[1] = min(span[0], event.t), max(span[1], event.t)
            persons.setdefault(event.track_id, event.person_id)
        elif event.type == "emotion":
            acc = sums.setdefault((event.track_id, event.uncertain_reason is None), dict.fromkeys(labels, 0.0))
            for label, p in (event.raw_probs or event.probs).items():  # the model's own outputs, not smoothed
                acc[label] += p
            counts[event.track_id] = counts.get(event.track_id, 0) + 1

    def dominant(track_id: int) -> str | None:
        acc = sums.get((track_id, True)) or sums.get((track_id, False))
        return max(acc, key=acc.get) if acc else None

    return [TrackSummary(track_id=tid, t_first=span[0], t_last=span[1], windows=counts.get(tid, 0),
                         dominant_label=dominant(tid), person_id=persons.get(tid))
            for tid, span in sorted(spans.items())]


def uncertain_spans(events: list) -> list[UncertainSpan]:
    """Runs of a track's emotion events with the same uncertain_reason (pure), in time order."""
    spans: list[UncertainSpan] = []
    open_spans: dict[int, UncertainSpan] = {}
    for event in sorted((e for e in events if e.type == "emotion"), key=lambda e: e.t_end):
        current = open_spans.get(event.track_id)
        if event.uncertain_reason is None:
            open_spans.pop(event.track_id, None)
        elif current is not None and current.reason == event.uncertain_reason:
            current.t_end, current.events = event.t_end, current.events + 1
        else:
            span = UncertainSpan(track_id=event.track_id, person_id=event.person_id, t_start=event.t_start,
                                 t_end=event.t_end, reason=event.uncertain_reason, events=1)
            spans.append(span)
            open_spans[event.track_id] = span
    return spans


def format_timeline(report: ClipReport) -> str:
    lines = [f"{report.source}: {report.duration:.1f} s, {report.width}x{report.height} @ {report.source_fps:.1f} fps, "
             f"{report.frames_sampled} frames sampled at {report.sample_fps:g} fps; model {report.model}; "
             f"detector {report.detector}"]
    for track in report.tracks:
        who = f" (person {track.person_id})" if track.person_id not in (None, track.track_id) else ""
        lines.append(f"track {track.track_id}{who}: {track.t_first:.1f}-{track.t_last:.1f} s, {track.windows} "
                     f"windows, mostly {track.dominant_label or 'unknown (too short for a window)'}")
        for event in report.emotions:
            if event.track_id == track.track_id:
                runner_up = sorted(event.probs.items(), key=lambda kv: kv[1], reverse=True)[1]
                uncertain = f"   uncertain: {event.uncertain_reason}" if event.uncertain_reason else ""
                lines.append(f"  {event.t_start:6.2f}-{event.t_end:6.2f} s  {event.label:<9} {event.confidence:5.2f}"
                             f"   (next: {runner_up[0]} {runner_up[1]:.2f}){uncertain}")
    return "\n".join(lines)


def plot_timeline(report: ClipReport, path: str | Path) -> Path:
    """One panel per track: each label's probability at the end time of each window."""
    try:
        import matplotlib
    except ImportError:  # the slim container images leave it out
        from service.errors import ServiceError

        raise ServiceError("--plot needs matplotlib, which this installation leaves out: pip install matplotlib") \
            from None

    matplotlib.use("Agg")  # headless: the service runs without a display
    import matplotlib.pyplot as plt

    tracks = [t for t in report.tracks if t.windows]
    # one colour per label: the default cycle has 10, MAFW 11 labels
    palette = plt.get_cmap("tab10" if len(report.labels) <= 10 else "tab20")
    colours = [palette(i) for i in range(len(report.labels))]
    fig, axes = plt.subplots(max(1, len(tracks)), 1, figsize=(9, 2.6 * max(1, len(tracks))), squeeze=False)
    for ax, track in zip(axes[:, 0], tracks):
        events = [e for e in report.emotions if e.track_id == track.track_id]
        times = [e.t_end for e in events]
        for label, colour in zip(report.labels, colours):
            ax.plot(times, [e.probs[label] for e in events], marker="o", markersize=3, label=label, color=colour)
        ax.set_title(f"track {track.track_id} (mostly {track.dominant_label})", fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
    if not tracks:
        axes[0, 0].text(0.5, 0.5, "no face tracked long enough for a window", ha="center", va="center")
    axes[-1, 0].set_xlabel("time (s, window end)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    legend_rows = -(-len(report.labels) // 6) if handles else 0  # ceil: the legend's rows under the last panel
    legend_height = 0.28 * legend_rows / fig.get_figheight()  # inches -> figure fraction
    if handles:  # below the panels, so a long title or 11 labels never overlap it
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8, frameon=False)
    fig.suptitle(f"{Path(report.source).name}: {report.model}", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, legend_height, 1, 0.96))
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
