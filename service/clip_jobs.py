"""Uploaded clips analysed off the event loop by `clip_workers` threads, completely (no frame dropped).

The queue is bounded and fair: at most `max_queued_clips` uploads wait for a worker (one more is refused with
`QueueFull`, which the route answers 429 with a Retry-After estimate); uploads whose request is waiting for the
answer go before background jobs, each kind in arrival order. Running background jobs also yield, between two of
their decoded frames: when a request waits and every worker is busy, one of them analyses that clip first on its own
thread, then resumes; and while any request's clip is being analysed, the others pause, so that clip has the CPUs
to itself. A short clip is never stuck behind long background ones: it waits at most one frame of theirs, and takes
about its time alone.
A job whose uploader has gone, or that a client cancels (DELETE /v1/clips/{id}), is cancelled: taken out of the
queue, or stopped between two decoded frames. The uploaded file (in the upload spool, service/spool.py) is deleted
as soon as its analysis ends, whatever the outcome.

Admission (`admit`, before an upload's body is read): at most `max_uploads_in_progress` uploads arrive at once
(`max_uploads_in_progress_per_client` from one address), none while the queue is full, and one client address has at most `max_background_clips_per_client` background jobs
queued or running; what is refused is refused with 429 before it has cost a byte of disk.

Job ids carry this run's identity (a random run prefix and a keyed check), so an id this run never issued (one of
an earlier run of the service, before a restart) is told apart from one it issued and has since forgotten.

Shutdown is bounded: drain() refuses new clips, cancels the queued ones, gives running analyses a grace period and
then stops them before their next frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import hmac
import itertools
import logging
import math
import secrets
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
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
from service.ingest.clip import probe_clip
from service.report import ClipReport
from service.spool import UploadSpool

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
    """Answered 429 with Retry-After: the message says which limit was met."""

    def __init__(self, queued: int, retry_after_s: int, message: str | None = None):
        super().__init__(message or f"{queued} clips are already waiting for analysis; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class UnknownJob(ServiceError):
    """A job id GET or DELETE cannot answer; `evicted` says whether this run issued it (and has dropped its result)
    or never did (an id of an earlier run, or a wrong one)."""

    def __init__(self, message: str, evicted: bool):
        super().__init__(message)
        self.evicted = evicted


@dataclass(order=True)
class _Queued:
    priority: int  # 0: the request waits for the answer, 1: background job
    seq: int
    job_id: str = field(compare=False)
    upload: ReceivedUpload = field(compare=False)
    queued_at: float = field(compare=False)  # monotonic


@dataclass
class _Running:
    started: float  # monotonic
    estimate_s: float | None  # its clip's duration times the cost per video second; None: duration unknown


SHUTTING_DOWN = "cancelled: the service is shutting down"
CLIENT_GONE = "cancelled: the client went away"
CANCELLED_BY_REQUEST = "cancelled by a DELETE request"


class ClipObserver:
    """What ClipJobs reports as it works (the Prometheus metrics implement it; the default ignores it)."""

    def queued(self, size_bytes: int) -> None: ...
    def refused(self, reason: str) -> None: ...
    def started(self, waited_s: float) -> None: ...
    def finished(self, outcome: str, analysis_s: float) -> None: ...


class ClipJobs:
    def __init__(self, settings: Settings, engine: Engine, observer: ClipObserver | None = None,
                 spool: UploadSpool | None = None):
        self.settings, self.engine = settings, engine
        self.spool = spool if spool is not None else UploadSpool.open(settings.spool_dir)
        self.keep = settings.clip_jobs_kept
        self.started_at = time.time()
        self._run_prefix = secrets.token_hex(4)  # this run's identity in its job ids
        self._id_key = secrets.token_bytes(16)
        self._client: dict[str, str] = {}  # queued and running background jobs -> client address
        self._cancel_reason: dict[str, str] = {}
        self._arriving: Counter[str] = Counter()  # uploads whose body is being received, by client address
        self.observer = observer or ClipObserver()
        self._jobs: OrderedDict[str, ClipJob] = OrderedDict()
        self._futures: dict[str, Future] = {}
        self._cancel: dict[str, threading.Event] = {}  # queued and running jobs
        self._queue: list[_Queued] = []  # a heap
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._idle = settings.clip_workers
        self._recent_cost: deque[float] = deque(maxlen=20)  # analysis s per video s, for Retry-After
        self._running: dict[str, _Running] = {}
        self.yields = 0  # times a background job stepped aside for a waiting request
        self._requests_running = 0  # analyses of clips whose request waits: background jobs pause meanwhile
        self._local = threading.local()
        self._workers = [threading.Thread(target=self._work, name=f"clip-{i}", daemon=True)
                         for i in range(settings.clip_workers)]
        for worker in self._workers:
            worker.start()

    # ---- submitting -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def admit(self, client: str, background: bool) -> Iterator[None]:
        """Hold one of the max_uploads_in_progress places while an upload's body is received. Refused at once
        (QueueFull, before the body is read) when every place is taken or the client holds its share of them, when
        the queue is full, or when a background upload's client already has max_background_clips_per_client jobs."""
        with self._cond:
            if self._closed:
                raise ServiceError("the service is shutting down; retry after it has restarted")
            arriving = sum(self._arriving.values())
            if arriving >= self.settings.max_uploads_in_progress:
                self.observer.refused("busy")
                raise QueueFull(len(self._queue), 1, f"{arriving} uploads are already arriving "
                                "(max_uploads_in_progress); retry in 1 s")
            if self._arriving[client] >= self.settings.max_uploads_in_progress_per_client:
                self.observer.refused("busy")
                raise QueueFull(len(self._queue), 1, f"this client is already sending {self._arriving[client]} "
                                "uploads (max_uploads_in_progress_per_client); retry in 1 s")
            self._check_room(client, background)
            self._arriving[client] += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving[client] -= 1
                if not self._arriving[client]:
                    del self._arriving[client]

    def _check_room(self, client: str | None, background: bool) -> None:
        """QueueFull when the queue, or this client's share of background jobs, is full. Called with the lock."""
        waiting = len(self._queue)
        if waiting - self._idle >= self.settings.max_queued_clips:
            self.observer.refused("queue_full")
            raise QueueFull(waiting, self._retry_after())
        limit = self.settings.max_background_clips_per_client
        if background and client is not None and sum(c == client for c in self._client.values()) >= limit:
            self.observer.refused("client_limit")
            retry = self._retry_after()
            raise QueueFull(waiting, retry, f"this client already has {limit} clips in the background "
                            f"(max_background_clips_per_client); retry in {retry} s")

    @property
    def arriving(self) -> int:
        with self._cond:
            return sum(self._arriving.values())

    def _new_id(self) -> str:
        body = f"{self._run_prefix}-{uuid.uuid4().hex[:16]}"
        return f"{body}-{self._id_mac(body)}"

    def _id_mac(self, body: str) -> str:
        return hmac.new(self._id_key, body.encode(), "sha256").hexdigest()[:8]

    def _issued_here(self, job_id: str) -> bool:
        body, _, mac = job_id.rpartition("-")
        return body.startswith(f"{self._run_prefix}-") and hmac.compare_digest(mac.encode(),
                                                                              self._id_mac(body).encode())

    def submit(self, upload: ReceivedUpload, interactive: bool = False,
               client: str | None = None) -> tuple[ClipJob, Future]:
        """Queue an upload (QueueFull when max_queued_clips are already waiting and no worker is idle, or when a
        background upload's `client` has its share of jobs). An interactive job (its request waits for the answer)
        goes before background ones."""
        job = ClipJob(id=self._new_id(), status="queued", filename=upload.filename, size_bytes=upload.size,
                      submitted_at=time.time())
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise ServiceError("the service is shutting down; retry after it has restarted")
            self._check_room(client, not interactive)
            if not interactive and client is not None:
                self._client[job.id] = client
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

    def cancel(self, job_id: str, reason: str = CLIENT_GONE) -> Future | None:
        """A queued job leaves the queue at once (its upload deleted); a running one stops before its next decoded
        frame. Returns the future its end is told to, or None when the job is not queued or running."""
        with self._cond:
            event = self._cancel.get(job_id)
            if event is None:
                return None
            self._cancel_reason.setdefault(job_id, reason)
            event.set()
            future = self._futures.get(job_id)
            queued = next((q for q in self._queue if q.job_id == job_id), None)
            if queued is not None:
                self._queue.remove(queued)
                heapq.heapify(self._queue)
        if queued is not None:
            queued.upload.delete()
            self._finish(job_id, "cancelled", 0.0, error=reason)
        return future

    async def cancel_and_wait(self, job_id: str, wait_s: float = 2.0) -> ClipJob:
        """DELETE /v1/clips/{id}: cancel a queued or running job and wait up to wait_s for it to stop; forget a
        finished one. Returns the job as it is then; UnknownJob when there is none."""
        job = self.get(job_id)
        future = self.cancel(job_id, CANCELLED_BY_REQUEST)
        if future is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), wait_s)
            return self.get(job_id)
        with self._cond:
            self._jobs.pop(job_id, None)
        return job

    # ---- reading --------------------------------------------------------------------------------------------

    def get(self, job_id: str) -> ClipJob:
        """The job; UnknownJob saying why there is none: this run never issued the id (the service has restarted
        since, or it is wrong), or its result was dropped to keep only the last clip_jobs_kept."""
        with self._cond:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        if self._issued_here(job_id):
            raise UnknownJob(f"clip job {job_id!r} has finished and its result was dropped: results are kept for "
                             f"the last {self.keep} jobs", evicted=True)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started_at))
        raise UnknownJob(f"clip job {job_id!r} is unknown to this run of the service (started {started}): results "
                         "do not outlive a restart", evicted=False)

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def closed(self) -> bool:
        """True once shutdown has begun: no new clips are taken."""
        return self._closed

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
                    self._cond.notify_all()  # drain() waits for idle workers

    def _yield_to_waiting_requests(self, cancelled: threading.Event) -> None:
        """Asked by a background job between two frames: while a request waits for its answer and no worker is
        idle to take it, analyse it here; while another worker analyses one, pause; then let the job go on."""
        while True:
            with self._cond:
                while self._requests_running and not cancelled.is_set() and not self._closed:
                    self._cond.wait(0.1)
                if not (self._queue and self._queue[0].priority == 0 and self._idle == 0 and not self._closed):
                    return
                item = heapq.heappop(self._queue)
                request_cancelled = self._cancel[item.job_id]
                self.yields += 1
            started = time.monotonic()
            self._run(item, request_cancelled)
            self._local.yielded_s = getattr(self._local, "yielded_s", 0.0) + time.monotonic() - started

    def _run(self, item: _Queued, cancelled: threading.Event) -> None:
        upload = item.upload
        self.observer.started(time.monotonic() - item.queued_at)
        self._update(item.job_id, status="running", started_at=time.time())
        started = time.monotonic()
        duration = self._duration(upload)
        with self._cond:
            self._running[item.job_id] = _Running(started, duration * self._cost_per_video_s() if duration else None)
        if item.priority == 0:
            should_stop = cancelled.is_set
            with self._cond:
                self._requests_running += 1
        else:
            def should_stop() -> bool:
                self._yield_to_waiting_requests(cancelled)
                return cancelled.is_set()
        yielded_before = getattr(self._local, "yielded_s", 0.0)
        outcome: dict = {}
        try:
            report = analyze.analyze_clip(upload.path, self.settings, self.engine, self._detector(),
                                          source=upload.filename, should_stop=should_stop)
            # The server's temporary file name means nothing to the client and is not for it to see.
            report.warnings = [w.replace(str(upload.path), upload.filename) for w in report.warnings]
            outcome = {"status": "done", "report": report}
        except ClipCancelled:
            with self._cond:
                reason = SHUTTING_DOWN if self._closed else self._cancel_reason.get(item.job_id, CLIENT_GONE)
            outcome = {"status": "cancelled", "error": reason}
        except ServiceError as exc:
            outcome = {"status": "failed", "error": str(exc).replace(str(upload.path), upload.filename)}
        except Exception as exc:  # never lose the service to one clip
            log.exception("clip %s failed", upload.filename)
            outcome = {"status": "failed", "error": f"internal error: {type(exc).__name__}"}
        finally:
            upload.delete()  # before anyone is told the job has finished
            if item.priority == 0:
                with self._cond:
                    self._requests_running -= 1
                    self._cond.notify_all()  # paused background jobs go on
        # Time spent on requests it yielded to is not this clip's cost.
        analysis_s = time.monotonic() - started - (getattr(self._local, "yielded_s", 0.0) - yielded_before)
        self._finish(item.job_id, outcome.pop("status"), analysis_s, duration, **outcome)

    @staticmethod
    def _duration(upload: ReceivedUpload) -> float | None:
        try:
            return probe_clip(upload.path).duration
        except Exception:  # not a readable video: the analysis itself says so
            return None

    def _finish(self, job_id: str, status: JobStatus, analysis_s: float, duration: float | None = None,
                **changes) -> None:
        self._update(job_id, status=status, finished_at=time.time(), **changes)
        with self._cond:
            self._cancel.pop(job_id, None)
            self._cancel_reason.pop(job_id, None)
            self._client.pop(job_id, None)
            self._running.pop(job_id, None)
            future = self._futures.pop(job_id, None)
            if status == "done" and duration:
                self._recent_cost.append(analysis_s / duration)
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

    def _cost_per_video_s(self) -> float:
        """Analysis seconds per second of video: the mean of recent clips, or the conservative setting before any."""
        if self._recent_cost:
            return sum(self._recent_cost) / len(self._recent_cost)
        return self.settings.clip_cost_per_video_s

    def _retry_after(self) -> int:
        """Seconds until a queue place is likely to free: when the first running analysis ends, each estimated from
        its own clip's length (times the measured cost per video second, or the conservative setting before any
        clip has been measured). Called with the lock held."""
        now = time.monotonic()
        left = [max(1.0, r.estimate_s - (now - r.started)) for r in self._running.values() if r.estimate_s]
        return max(1, math.ceil(min(left))) if left else 1

    def drain(self, grace_s: float, stop_wait_s: float = 5.0) -> int:
        """The first part of a shutdown: refuse new clips, cancel the queued ones (their uploads deleted), give
        running analyses `grace_s` to finish, then stop them before their next frame (their requests learn it from
        the job's error) and wait up to stop_wait_s for them to stop. Returns how many analyses were stopped."""
        with self._cond:
            self._closed = True
            leftovers, self._queue = list(self._queue), []
            self._cond.notify_all()
        for item in leftovers:
            item.upload.delete()
            self._finish(item.job_id, "cancelled", 0.0, error=SHUTTING_DOWN)
        all_idle = lambda: self._idle == len(self._workers)  # noqa: E731
        with self._cond:
            if not self._cond.wait_for(all_idle, timeout=grace_s):
                stopped = len(self._running)
                log.warning("shutdown: stopping %d clip analyses still running after %.1f s", stopped, grace_s)
                for event in self._cancel.values():
                    event.set()
                self._cond.wait_for(all_idle, timeout=stop_wait_s)
                return stopped
        return 0

    def shutdown(self) -> None:
        """Stop at once: drain() without grace, the workers joined, the upload spool cleared."""
        self.drain(0.0)
        for worker in self._workers:
            worker.join(timeout=30)
        self.spool.close()
