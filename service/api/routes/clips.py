"""Uploaded clips: POST a video, get its emotion timeline (ClipReport); large ones are processed in the background,
and DELETE cancels one. A full clip queue, too many uploads at once or a client's full share of background jobs are
answered 429 with Retry-After before the body is read; a clip over its decoding budget 413 from its header; a full
disk 507; a request whose client goes away is cancelled."""

import asyncio

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from service.clip_jobs import ClipJob, QueueFull, UnknownJob
from service.api.deps import ClipJobsDep, MetricsDep, SettingsDep
from service.api.uploads import (BodyPace, ServiceClosing, SpoolFull, UploadAbandoned, UploadTooLarge, UploadTooSlow,
                                 receive_clip)
from service.errors import ClipError, ServiceError, UploadError
from service.ingest import ClipBudget, probe_clip

router = APIRouter(prefix="/v1/clips", tags=["clips"])

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the video clip"}}}}}}}


CLIENT_CLOSED_REQUEST = 499  # nginx's code for a request whose client went away (in /metrics only)
# Refusals sent before the body has been read close the connection: the rest of the body is not waited for.
CLOSE = {"Connection": "close"}


def _clip_error_status(message: str) -> int:
    if "max_clip_pixels" in message or "frame limits" in message:  # a header that lied (ClipOverBudget)
        return status.HTTP_413_CONTENT_TOO_LARGE
    return status.HTTP_400_BAD_REQUEST if "empty" in message else status.HTTP_422_UNPROCESSABLE_CONTENT


def _too_many(exc: QueueFull) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                         headers={"Retry-After": str(exc.retry_after_s)} | CLOSE)


def _over_budget(path, budget: ClipBudget) -> str | None:
    """Why the clip's header puts it over its decoding budget, or None (also when it is no readable video: the
    analysis says so)."""
    try:
        return budget.problem(probe_clip(path))
    except ClipError:
        return None


def _declared_size(request: Request) -> int:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


@router.post("", openapi_extra=UPLOAD_BODY, response_model=None, responses={
    200: {"description": "the clip's report (ClipReport)"},
    202: {"description": "accepted for background analysis; poll the Location"},
    400: {"description": "empty upload or no 'file' field"},
    408: {"description": "the body arrived slower than upload_min_bytes_per_s; dropped"},
    413: {"description": "over the upload limit, or over the decoding budget (max_clip_pixels, max_clip_seconds, "
                         "the frame limits) by its header or, failing later, by its frames"},
    422: {"description": "not a video, or corrupt"},
    429: {"description": "max_queued_clips uploads are already waiting, max_uploads_in_progress are arriving, or "
                         "this client has max_background_clips_per_client jobs; retry after Retry-After seconds"},
    503: {"description": "the service is shutting down (new uploads, and analyses still running after "
                         "shutdown_grace_s)"},
    507: {"description": "no room left in the upload spool"}})
async def post_clip(request: Request, settings: SettingsDep, clips: ClipJobsDep, metrics: MetricsDep,
                    background: bool = False) -> JSONResponse:
    """Analyse a clip completely (every frame decoded, sampled to sample_fps). Clips over sync_upload_mb, or with
    `?background=true`, are answered 202 with `Location: /v1/clips/{id}`. The upload is deleted when the analysis
    ends; frames are not stored. If the client of a waiting request goes away, its analysis is cancelled."""
    observer = metrics.uploads
    client = request.client.host if request.client else "unknown"
    sync_limit = settings.sync_upload_mb * 1024 * 1024
    try:
        with clips.admit(client, background or _declared_size(request) > sync_limit):
            upload = await receive_clip(request, "file", int(settings.max_upload_mb * 1024 * 1024), clips.spool,
                                        closing=lambda: clips.closed, pace=BodyPace.of(settings))
    except QueueFull as exc:  # refused before the body was read
        raise _too_many(exc) from None
    except ServiceClosing as exc:
        observer.refused("shutting_down")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except UploadAbandoned as exc:
        observer.refused("abandoned")
        raise HTTPException(CLIENT_CLOSED_REQUEST, str(exc)) from None
    except UploadTooSlow as exc:
        observer.refused("too_slow")
        raise HTTPException(status.HTTP_408_REQUEST_TIMEOUT, str(exc), headers=CLOSE) from None
    except UploadTooLarge as exc:
        observer.refused("refused")
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc), headers=CLOSE) from None
    except UploadError as exc:
        observer.refused("refused")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except SpoolFull as exc:
        observer.refused("disk_full")
        raise HTTPException(status.HTTP_507_INSUFFICIENT_STORAGE, str(exc), headers=CLOSE) from None
    except ServiceError as exc:  # the service began to shut down before the upload was admitted
        observer.refused("shutting_down")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if upload.size == 0:
        upload.delete()
        observer.refused("refused")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"uploaded file {upload.filename!r} is empty")
    problem = await asyncio.to_thread(_over_budget, upload.path, ClipBudget.of(settings))
    if problem:
        upload.delete()
        observer.refused("over_budget")
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, problem)
    try:
        if background or upload.size > sync_limit:
            job, _ = clips.submit(upload, client=client)
            return JSONResponse(job.model_dump(mode="json", exclude={"report"}),
                                status_code=status.HTTP_202_ACCEPTED, headers={"Location": f"/v1/clips/{job.id}"})
        job = await clips.run(upload, request.is_disconnected)
    except QueueFull as exc:
        upload.delete()
        raise _too_many(exc) from None
    except ServiceError as exc:  # the service is shutting down
        upload.delete()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if job.status == "cancelled":  # the service is shutting down, or nobody is listening any more
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE if clips.closed else CLIENT_CLOSED_REQUEST,
                            job.error)
    if job.status == "failed":
        raise HTTPException(_clip_error_status(job.error or ""), job.error)
    return JSONResponse(job.report.model_dump(mode="json"))


def _not_found(exc: UnknownJob) -> HTTPException:
    # 410: this run issued the id and has dropped its result; 404: it never issued it (an earlier run's, or wrong).
    return HTTPException(status.HTTP_410_GONE if exc.evicted else status.HTTP_404_NOT_FOUND, str(exc))


JOB_ERRORS = {404: {"description": "an id this run of the service never issued (one from before a restart)"},
              410: {"description": "a job of this run whose result was dropped (only the last clip_jobs_kept "
                                   "are kept)"}}


@router.get("/{job_id}", response_model=ClipJob, responses=JOB_ERRORS)
def get_clip(job_id: str, clips: ClipJobsDep) -> ClipJob:
    try:
        return clips.get(job_id)
    except UnknownJob as exc:
        raise _not_found(exc) from None


@router.delete("/{job_id}", response_model=ClipJob, responses=JOB_ERRORS)
async def delete_clip(job_id: str, clips: ClipJobsDep) -> ClipJob:
    """Cancel a queued or running job: it stops before its next decoded frame (its CPU is free within a second)
    and its upload is deleted; the job is answered as it is then (`cancelled`, or `running` if it has not stopped
    within 2 s). A finished job's result is forgotten."""
    try:
        return await clips.cancel_and_wait(job_id)
    except UnknownJob as exc:
        raise _not_found(exc) from None
