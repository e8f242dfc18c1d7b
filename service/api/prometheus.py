"""Prometheus metrics: latency histograms observed as work happens, and gauges/counters read from the runtime's
snapshot at scrape time (so they can never drift from what the runtime really counts)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RuntimeCollector(Collector):
    def __init__(self, snapshot):
        self._snapshot = snapshot  # () -> dict, LiveRuntime.snapshot or None when no live runtime

    def collect(self):
        snap = self._snapshot()
        if snap is None:
            return
        per_source = {
            "emotion_source_fps": (GaugeMetricFamily, "sampled frames processed per second", "fps_processed"),
            "emotion_source_up": (GaugeMetricFamily, "1 while the source delivers frames", "alive"),
            "emotion_frame_queue_depth": (GaugeMetricFamily, "sampled frames waiting for the face worker",
                                          "queue_depth"),
            "emotion_frames_read": (CounterMetricFamily, "frames read from the source", "frames_read"),
            "emotion_frames_sampled": (CounterMetricFamily, "frames kept at sample_fps", "frames_sampled"),
            "emotion_frames_dropped": (CounterMetricFamily, "sampled frames dropped because the face worker lagged",
                                       "frames_dropped"),
            "emotion_source_reconnects": (CounterMetricFamily, "times the source was reopened", "reconnects"),
        }
        for name, (family, doc, key) in per_source.items():
            metric = family(name, doc, labels=["source"])
            for source, values in snap["sources"].items():
                metric.add_metric([source], float(values[key]))
            yield metric
        tracks = GaugeMetricFamily("emotion_tracks", "faces tracked now", labels=["source"])
        for source, values in snap["sources"].items():
            tracks.add_metric([source], len(values["tracks"]))
        yield tracks
        yield GaugeMetricFamily("emotion_window_queue_depth", "windows waiting for inference",
                                value=snap["windows_queue_depth"])
        yield CounterMetricFamily("emotion_windows_dropped", "windows dropped because inference lagged",
                                  value=snap["windows_dropped"])
        yield CounterMetricFamily("emotion_windows_classified", "windows classified", value=snap["windows_classified"])
        yield CounterMetricFamily("emotion_events_published", "events published", value=snap["events_published"])
        yield GaugeMetricFamily("emotion_websocket_clients", "websocket subscribers", value=snap["subscribers"])
        yield CounterMetricFamily("emotion_websocket_events_dropped", "events slow websocket clients lost",
                                  value=snap["events_dropped_slow_clients"])
        restarts = CounterMetricFamily("emotion_watchdog_restarts", "restarts by the watchdog", labels=["component"])
        for component, count in snap["watchdog_restarts"].items():
            restarts.add_metric([component], count)
        yield restarts


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()  # our own registry: no global state shared between apps or tests
        self.stage_seconds = Histogram("emotion_stage_seconds", "time per call of each pipeline stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("emotion_inference_batch_size", "windows per inference call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def watch_runtime(self, snapshot) -> None:
        self.registry.register(RuntimeCollector(snapshot))
