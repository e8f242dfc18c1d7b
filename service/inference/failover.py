"""Windows on the server while it answers, on the robot when it does not: FailoverEngine, an Engine (and
RoutingEngine) over a remote TritonEngine and a local engine (the embedded default bundle, or the one
`engine_fallback` names).

Each call runs all its windows in one place: the remote engine within its deadline or, once it fails or is late,
the local one, at once and for the same windows, so no window is lost or classified twice and the events that follow
keep their order (and their `seq`). After a failure every call goes local straight away while `HealthChecks` asks
the server, with a doubling backoff, whether it is live, its model ready and its contract still the one the windows
are made for; the first yes sends windows to the server again, with frame features of its own from then on (the
server may serve another version of the model than before).

The windows are made for the remote model's contract when the server answered at start (else for the local one's).
A local fallback with other crops or frames gets each window adapted (`adapt_window`: frames picked, crops resized
and turned grey or RGB) and its probabilities put in the remote model's label order; both models must name the same
emotions. Each engine keeps its own frame features: caches of its own beside each caller's (whose capacity they
take), the remote's new after each reconnection.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import replace

import cv2
import numpy as np

from service.bundle import BundleSpec
from service.errors import BundleError
from service.inference.base import LOCAL, Engine, Routed, predict_with_valence_arousal
from service.inference.engine import FrameFeatureCache
from service.inference.triton_engine import (WINDOW_SHAPE, RemoteContractError, RemoteUnavailable, TritonEngine,
                                            window_compatible)
from service.state import EngineStatus
from service.threads import StoppableThread
from service.windows import Window

log = logging.getLogger(__name__)


def _resample(frames: np.ndarray, size: int, channels: int) -> np.ndarray:
    """[T, H, W, C] uint8 crops at `size` px with `channels` (grey from RGB by luminance, RGB from grey repeated)."""
    out = []
    for frame in frames:
        if frame.shape[0] != size:
            frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA).reshape(size, size, -1)
        if frame.shape[2] == 3 and channels == 1:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[:, :, None]
        elif frame.shape[2] == 1 and channels == 3:
            frame = np.repeat(frame, 3, axis=2)
        out.append(frame)
    return np.stack(out)


def adapt_window(window: Window, spec: BundleSpec) -> Window:
    """The window as `spec`'s model takes it (pure): num_frames picked evenly from its frames, crops resized and
    turned grey or RGB. The face margin stays the window's own."""
    t = len(window.faces)
    picks = np.linspace(0, t - 1, spec.num_frames).round().astype(int) if t != spec.num_frames else np.arange(t)
    faces = _resample(window.faces[picks], spec.image_size, spec.channels)
    scene = _resample(window.scene[picks], spec.image_size, spec.channels) if window.scene is not None else None
    frame_ids = tuple(window.frame_ids[i] for i in picks) if window.frame_ids else ()
    return replace(window, faces=faces, scene=scene, frame_ids=frame_ids)


class HealthChecks(StoppableThread):
    """Asks the server again after backoff_s, doubling up to max_s, until it answers as its contract says (then
    the engine goes remote and this thread ends) or it is stopped."""

    def __init__(self, engine: FailoverEngine, backoff_s: float, max_s: float):
        super().__init__("engine-health")
        self.engine, self.backoff_s, self.max_s = engine, backoff_s, max_s
        self.next_at: float | None = None

    def run(self) -> None:
        delay = self.backoff_s
        while True:
            self.next_at = time.monotonic() + delay
            if self.pause(delay):
                return
            self.next_at = None
            if self.engine.check_remote():
                return
            delay = min(delay * 2, self.max_s)


class FailoverEngine:
    def __init__(self, remote: TritonEngine, local: Engine, backoff_s: float = 0.5, backoff_max_s: float = 2.0,
                 start_error: str | None = None):
        """`remote` connected (its spec known) or not (`start_error`: why; windows are made for the local
        model and health checks start now)."""
        self.remote, self.local = remote, local
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.spec = remote.spec if remote.spec is not None else local.spec
        self.bundle = remote.bundle if remote.spec is not None else local.bundle
        self.providers = remote.providers + list(local.providers)
        if sorted(local.spec.labels) != sorted(self.spec.labels):
            raise BundleError(f"the local fallback {local.spec.name} has labels {local.spec.labels}, the remote "
                              f"model {self.spec.name} {self.spec.labels}: they must name the same emotions")
        if local.spec.needs_scene and not self.spec.needs_scene:
            raise BundleError(f"the local fallback {local.spec.name} needs scene crops; the remote model "
                              f"{self.spec.name} does not, so its windows have none")
        self._order = [local.spec.labels.index(label) for label in self.spec.labels]
        self._adapt = bool(window_compatible(self.spec, local.spec, WINDOW_SHAPE))
        self._caches: dict[str, weakref.WeakKeyDictionary[FrameFeatureCache, FrameFeatureCache]] = {
            "remote": weakref.WeakKeyDictionary(), "local": weakref.WeakKeyDictionary()}
        self._lock = threading.Lock()
        self._remote_up = remote.spec is not None
        self.last_error = start_error
        self.switches = self.windows_local = self.windows_remote = self.health_checks = 0
        self._health: HealthChecks | None = None
        self._closed = False
        if self._adapt:
            log.warning("the local fallback %s takes other windows than %s: %s; they are adapted", local.spec.name,
                        self.spec.name, "; ".join(window_compatible(self.spec, local.spec, WINDOW_SHAPE)))
        if not self._remote_up:
            log.warning("!!! remote engine %s is away (%s): windows run on the local %s until it answers",
                        remote.url, start_error, local.spec.name)
            self._start_health_checks()

    @property
    def labels(self) -> list[str]:
        return self.spec.labels

    # ---- classifying ----------------------------------------------------------------------------------------

    def predict_routed(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None) -> Routed:
        if self._remote_up:
            try:
                probs, va = self.remote.predict_windows_va(items, self._cache("remote", cache))
            except Exception as exc:  # RemoteUnavailable, or anything else: the windows still get classified here
                self._went_away(str(exc) if isinstance(exc, RemoteUnavailable) else f"{type(exc).__name__}: {exc}")
            else:
                with self._lock:
                    self.windows_remote += len(items)
                return Routed(probs, va, self.remote.url, self.remote.spec.name)
        return Routed(*self._predict_local(items, cache), LOCAL, self.local.spec.name)

    def predict_windows(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None = None) -> np.ndarray:
        return self.predict_routed(items, cache).probs

    def predict(self, faces: np.ndarray, scene: np.ndarray | None = None) -> np.ndarray:
        windows = [("predict", Window(0, f, None if scene is None else scene[i], 0.0, 0.0, (0.0, 0.0, 0.0, 0.0)))
                   for i, f in enumerate(faces)]
        return self.predict_windows(windows)

    def _cache(self, engine: str, cache: FrameFeatureCache | None) -> FrameFeatureCache | None:
        """The caller's cache's counterpart for one engine (None: no caching)."""
        if cache is None:
            return None
        with self._lock:
            own = self._caches[engine].get(cache)
            if own is None:
                own = self._caches[engine][cache] = FrameFeatureCache(cache.capacity)
            return own

    def _predict_local(self, items: list[tuple[str, Window]], cache: FrameFeatureCache | None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        if self._adapt:
            items = [(source, adapt_window(w, self.local.spec)) for source, w in items]
        probs, va = predict_with_valence_arousal(self.local, items, self._cache("local", cache))
        with self._lock:
            self.windows_local += len(items)
        return probs[:, self._order], va

    # ---- switching ------------------------------------------------------------------------------------------

    def _went_away(self, error: str) -> None:
        with self._lock:
            self.last_error = error
            if not self._remote_up:
                return  # another caller saw it first
            self._remote_up = False
            self.switches += 1
        log.warning("!!! remote engine away (%s): windows run on the local %s until it answers", error,
                    self.local.spec.name)
        self._start_health_checks()

    def _start_health_checks(self) -> None:
        with self._lock:
            if self._closed or (self._health is not None and self._health.is_alive()):
                return
            self._health = HealthChecks(self, self.backoff_s, self.backoff_max_s)
            self._health.start()

    def check_remote(self) -> bool:
        """One health check: live, model ready, contract as the windows need it. True: windows go remote again."""
        with self._lock:
            self.health_checks += 1
        try:
            self.remote.connect(fresh=True)
            found = window_compatible(self.spec, self.remote.spec)
            if found:
                raise RemoteContractError(f"{self.remote.url}: the served model's contract changed: "
                                          f"{'; '.join(found)}; restart this service to use it")
        except (RemoteUnavailable, RemoteContractError) as exc:
            with self._lock:
                self.last_error = str(exc)
            log.debug("health check failed: %s", exc)
            return False
        with self._lock:
            self._caches["remote"] = weakref.WeakKeyDictionary()
            self._remote_up, self.last_error = True, None
            self.switches += 1
        log.warning("remote engine %s answers again: windows run there", self.remote.url)
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            health = self._health
        if health is not None:
            health.stop_and_join(2.0)
        self.remote.close()

    # ---- reporting ------------------------------------------------------------------------------------------

    def status(self) -> EngineStatus:
        with self._lock:
            up, health = self._remote_up, self._health
            remote_windows = self.windows_remote
            status = EngineStatus(
                where=self.remote.url if up else LOCAL, status="remote" if up else "fallback",
                model=self.remote.spec.name if up else self.local.spec.name, remote=self.remote.url,
                last_error=self.last_error, fallback_model=self.local.spec.name, switches=self.switches,
                windows_remote=remote_windows, windows_local=self.windows_local, health_checks=self.health_checks)
        sent, received = self.remote.bytes_sent, self.remote.bytes_received
        next_at = health.next_at if health is not None and health.is_alive() else None
        return status.model_copy(update={
            "remote_bytes_sent": sent, "remote_bytes_received": received,
            "bytes_per_window": round((sent + received) / remote_windows, 1) if remote_windows else None,
            "next_check_s": round(max(0.0, next_at - time.monotonic()), 2) if next_at is not None else None})
