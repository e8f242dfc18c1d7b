"""Uploaded clips analysed off the event loop by `clip_workers` threads, completely (no frame dropped).

The queue is bounded and fair: at most `max_queued_clips` uploads wait for a worker (one more is refused with
`QueueFull`, which the route answers 429 with a Retry-After estimate); uploads whose request is waiting for the
answer go before background jobs, each kind in arrival order, so a short clip is not stuck behind a long background
one. A job whose uploader has gone is cancelled: taken out of the queue, or stopped between two decoded frames. The
uploaded file is deleted as soon as its analysis ends, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from service import analyze
from service.config import Settings
from service.detect import create_detector
from service.errors import ClipCancelled, ServiceError
from service.inference.base import Engine
from service.report import ClipReport

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class ReceivedUpload(Protocol):
    """A clip received and stored for analysis (service/api/uploads.py makes them); deleted when its job ends."""

    path: Path
    filename: str
    size: int

    def delete(self) -> None: ...


class ClipJob(BaseModel):
    id: str
    status: JobStatus
    filename: str
    size_bytes: int
    submitted_at: float = Field(description="Unix time the upload was queued")
    started_at: float | None = Field(None, description="Unix time a worker took it")
    finished_at: float | None = None
    error: str | None = None
    report: ClipReport | None = None


class QueueFull(ServiceError):
    def __init__(self, queued: int, retry_after_s: int):
        super().__init__(f"{queued} clips are already waiting for analysis; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(order=True)
class _Queued:
    priority: int  # 0: the request waits for the answer, 1: background job
    seq: int
    job_id: str = field(compare=False)
    upload: ReceivedUpload = field(compare=False)
    queued_at: float = field(compare=False)  # monotonic


class ClipObserver:
    """What ClipJobs reports as it works (the Prometheus metrics implement it; the default ignores it)."""

    def queued(self, size_bytes: int) -> None: ...
    def refused(self, reason: str) -> None: ...
    def started(self, waited_s: float) -> None: ...
    def finished(self, outcome: str, analysis_s: float) -> None: ...


class ClipJobs:
    def __init__(self, settings: Settings, engine: Engine, observer: ClipObserver | None = None):
        self.settings, self.engine = settings, engine
        self.keep = settings.clip_jobs_kept
        self.observer = observer or ClipObserver()
        self._jobs: OrderedDict[str, ClipJob] = OrderedDict()
        self._futures: dict[str, Future] = {}
        self._cancel: dict[str, threading.Event] = {}  # queued and running jobs
        self._queue: list[_Queued] = []  # a heap
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._idle = settings.clip_workers
        self._recent_analysis_s: deque[float] = deque(maxlen=20)  # for the Retry-After estimate
        self._local = threading.local()
        self._workers = [threading.Thread(target=self._work, name=f"clip-{i}", daemon=True)
                         for i in range(settings.clip_workers)]
        for worker in self._workers:
            worker.start()

    # ---- submitting -----------------------------------------------------------------------------------------

    def submit(self, upload: ReceivedUpload, interactive: bool = False) -> tuple[ClipJob, Future]:
        """Queue an upload (QueueFull when max_queued_clips are already waiting and no worker is idle). An
        interactive job (its request waits for the answer) goes before background ones."""
        job = ClipJob(id=uuid.uuid4().hex, status="queued", filename=upload.filename, size_bytes=upload.size,
                      submitted_at=time.time())
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise ServiceError("the service is shutting down")
            waiting = len(self._queue)
            if waiting - self._idle >= self.settings.max_queued_clips:
                self.observer.refused("queue_full")
                raise QueueFull(waiting, self._retry_after(waiting))
            self._jobs[job.id] = job
            self._futures[job.id] = future
            self._cancel[job.id] = threading.Event()
            self._forget_old_results()
            heapq.heappush(self._queue, _Queued(0 if interactive else 1, next(self._seq), job.id, upload,
                                                time.monotonic()))
            self._cond.notify()
        self.observer.queued(upload.size)
        return job, future

    async def run(self, upload: ReceivedUpload, client_gone: Callable[[], Awaitable[bool]],
                  poll_s: float = 0.25) -> ClipJob:
        """Analyse an upload while its request waits; cancelled as soon as `client_gone()` says so."""
        job, future = self.submit(upload, interactive=True)
        waiting = asyncio.wrap_future(future)
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=poll_s)
            if not waiting.done() and await client_gone():
                self.cancel(job.id)
                break
        return await waiting

    def cancel(self, job_id: str) -> None:
        """A queued job leaves the queue at once; a running one stops before its next decoded frame."""
        with self._cond:
            event = self._cancel.get(job_id)
            if event is None:
                return
            event.set()
            queued = next((q for q in self._queue if q.job_id == job_id), None)
            if queued is not None:
                self._queue.remove(queued)
                heapq.heapify(self._queue)
        if queued is not None:
            queued.upload.delete()
            self._finish(job_id, "cancelled", 0.0, error="cancelled: the client went away")

    # ---- reading --------------------------------------------------------------------------------------------

    def get(self, job_id: str) -> ClipJob | None:
        with self._cond:
            return self._jobs.get(job_id)

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def busy(self) -> int:
        with self._cond:
            return len(self._workers) - self._idle

    # ---- working --------------------------------------------------------------------------------------------

    def _detector(self):
        # One detector per worker thread: detectors are not shared between threads.
        if not hasattr(self._local, "detector"):
            self._local.detector = create_detector(self.settings)
        return self._local.detector

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                item = heapq.heappop(self._queue)
                self._idle -= 1
                cancelled = self._cancel[item.job_id]
            try:
                self._run(item, cancelled)
            finally:
                with self._cond:
                    self._idle += 1

    def _run(self, item: _Queued, cancelled: threading.Event) -> None:
        upload = item.upload
        self.observer.started(time.monotonic() - item.queued_at)
        self._update(item.job_id, status="running", started_at=time.time())
        started = time.monotonic()
        outcome: dict = {}
        try:
            report = analyze.analyze_clip(upload.path, self.settings, self.engine, self._detector(),
                                          source=upload.filename, should_stop=cancelled.is_set)
            # The server's temporary file name means nothing to the client and is not for it to see.
            report.warnings = [w.replace(str(upload.path), upload.filename) for w in report.warnings]
            outcome = {"status": "done", "report": report}
        except ClipCancelled:
            outcome = {"status": "cancelled", "error": "cancelled: the client went away"}
        except ServiceError as exc:
            outcome = {"status": "failed", "error": str(exc).replace(str(upload.path), upload.filename)}
        except Exception as exc:  # never lose the service to one clip
            log.exception("clip %s failed", upload.filename)
            outcome = {"status": "failed", "error": f"internal error: {type(exc).__name__}"}
        finally:
            upload.delete()  # before anyone is told the job has finished
        self._finish(item.job_id, outcome.pop("status"), time.monotonic() - started, **outcome)

    def _finish(self, job_id: str, status: JobStatus, analysis_s: float, **changes) -> None:
        self._update(job_id, status=status, finished_at=time.time(), **changes)
        with self._cond:
            self._cancel.pop(job_id, None)
            future = self._futures.pop(job_id, None)
            if status == "done":
                self._recent_analysis_s.append(analysis_s)
            job = self._jobs.get(job_id)
        self.observer.finished(status, analysis_s)
        if future is not None:
            future.set_result(job)

    def _update(self, job_id: str, **changes) -> None:
        with self._cond:
            if job_id in self._jobs:
                self._jobs[job_id] = self._jobs[job_id].model_copy(update=changes)

    def _forget_old_results(self) -> None:
        # Bounded memory: the oldest finished results go first (queued and running jobs are always kept).
        while len(self._jobs) > self.keep:
            oldest = next((k for k, j in self._jobs.items() if j.status in ("done", "failed", "cancelled")), None)
            if oldest is None:
                return
            del self._jobs[oldest]

    def _retry_after(self, waiting: int) -> int:
        # When a slot is likely to free: the recent mean analysis time times the rounds of work ahead.
        mean = sum(self._recent_analysis_s) / len(self._recent_analysis_s) if self._recent_analysis_s else 5.0
        return max(1, math.ceil(mean * math.ceil((waiting + 1) / len(self._workers))))

    def shutdown(self) -> None:
        """Stop taking work; queued clips are cancelled and their uploads deleted; running ones are asked to stop."""
        with self._cond:
            self._closed = True
            leftovers, self._queue = list(self._queue), []
            for event in self._cancel.values():
                event.set()
            self._cond.notify_all()
        for item in leftovers:
            item.upload.delete()
            self._finish(item.job_id, "cancelled", 0.0, error="cancelled: the service shut down")
        for worker in self._workers:
            worker.join(timeout=30)
