"""Uploaded clips analysed off the event loop, in a small thread pool, completely (no frame dropped). Short clips
are awaited by the request; large ones become jobs polled at /v1/clips/{id}. The uploaded file is deleted as soon
as its analysis ends, whatever the outcome."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel

from service.analyze import analyze_clip
from service.api.uploads import ReceivedUpload
from service.config import Settings
from service.detect import create_detector
from service.errors import ServiceError
from service.report import ClipReport

log = logging.getLogger(__name__)


class ClipJob(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    filename: str
    size_bytes: int
    submitted_at: float
    finished_at: float | None = None
    error: str | None = None
    report: ClipReport | None = None


class ClipJobs:
    def __init__(self, settings: Settings, engine, keep: int = 100):
        self.settings, self.engine, self.keep = settings, engine, keep
        self._executor = ThreadPoolExecutor(settings.clip_workers, thread_name_prefix="clip")
        self._jobs: OrderedDict[str, ClipJob] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._uploads: dict[str, ReceivedUpload] = {}  # not yet analysed: deleted at shutdown if never run
        self.failed = 0

    def _detector(self):
        # One detector per pool thread: detectors are not shared between threads.
        if not hasattr(self._local, "detector"):
            self._local.detector = create_detector(self.settings)
        return self._local.detector

    def submit(self, upload: ReceivedUpload) -> tuple[ClipJob, Future]:
        job = ClipJob(id=uuid.uuid4().hex, status="queued", filename=upload.filename, size_bytes=upload.size,
                      submitted_at=time.time())
        with self._lock:
            self._jobs[job.id] = job
            self._uploads[job.id] = upload
            while len(self._jobs) > self.keep:  # bounded memory: the oldest finished results go first
                oldest = next((k for k, j in self._jobs.items() if j.status in ("done", "failed")), None)
                if oldest is None:
                    break
                del self._jobs[oldest]
        return job, self._executor.submit(self._run, job.id, upload)

    async def run(self, upload: ReceivedUpload) -> ClipJob:
        job, future = self.submit(upload)
        await asyncio.wrap_future(future)
        return self.get(job.id)

    def get(self, job_id: str) -> ClipJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _update(self, job_id: str, **changes) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id] = self._jobs[job_id].model_copy(update=changes)

    def _run(self, job_id: str, upload: ReceivedUpload) -> None:
        self._update(job_id, status="running")
        try:
            report = analyze_clip(upload.path, self.settings, self.engine, self._detector(), source=upload.filename)
            self._update(job_id, status="done", report=report, finished_at=time.time())
        except ServiceError as exc:
            self.failed += 1
            self._update(job_id, status="failed", error=str(exc).replace(str(upload.path), upload.filename),
                         finished_at=time.time())
        except Exception as exc:  # never lose the service to one clip
            self.failed += 1
            log.exception("clip %s failed", upload.filename)
            self._update(job_id, status="failed", error=f"internal error: {type(exc).__name__}",
                         finished_at=time.time())
        finally:
            upload.delete()
            with self._lock:
                self._uploads.pop(job_id, None)

    def shutdown(self) -> None:
        """Stop taking work; queued clips are cancelled and their uploads deleted (a running one finishes)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            leftovers, self._uploads = list(self._uploads.values()), {}
        for upload in leftovers:
            upload.delete()
