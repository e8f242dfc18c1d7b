"""Uploaded clips: POST a video, get its emotion timeline (ClipReport); large ones are processed in the background.
A full clip queue answers 429 with Retry-After; a request whose client goes away is cancelled."""

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from service.clip_jobs import ClipJob, QueueFull
from service.api.deps import ClipJobsDep, MetricsDep, SettingsDep
from service.api.uploads import ServiceClosing, UploadAbandoned, UploadTooLarge, receive_clip
from service.errors import ServiceError, UploadError

router = APIRouter(prefix="/v1/clips", tags=["clips"])

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the video clip"}}}}}}}


CLIENT_CLOSED_REQUEST = 499  # nginx's code for a request whose client went away (in /metrics only)


def _clip_error_status(message: str) -> int:
    return status.HTTP_400_BAD_REQUEST if "empty" in message else status.HTTP_422_UNPROCESSABLE_CONTENT


@router.post("", openapi_extra=UPLOAD_BODY, response_model=None, responses={
    200: {"description": "the clip's report (ClipReport)"},
    202: {"description": "accepted for background analysis; poll the Location"},
    400: {"description": "empty upload or no 'file' field"}, 413: {"description": "over the upload limit"},
    422: {"description": "not a video, or corrupt"},
    429: {"description": "max_queued_clips uploads are already waiting; retry after Retry-After seconds"},
    503: {"description": "the service is shutting down (new uploads, and analyses still running after "
                         "shutdown_grace_s)"}})
async def post_clip(request: Request, settings: SettingsDep, clips: ClipJobsDep, metrics: MetricsDep,
                    background: bool = False) -> JSONResponse:
    """Analyse a clip completely (every frame decoded, sampled to sample_fps). Clips over sync_upload_mb, or with
    `?background=true`, are answered 202 with `Location: /v1/clips/{id}`. The upload is deleted when the analysis
    ends; frames are not stored. If the client of a waiting request goes away, its analysis is cancelled."""
    observer = metrics.uploads
    try:
        if clips.closed:
            raise ServiceClosing("the service is shutting down; retry after it has restarted")
        upload = await receive_clip(request, "file", int(settings.max_upload_mb * 1024 * 1024), clips.spool,
                                    closing=lambda: clips.closed)
    except ServiceClosing as exc:
        observer.refused("shutting_down")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except UploadAbandoned as exc:
        observer.refused("abandoned")
        raise HTTPException(CLIENT_CLOSED_REQUEST, str(exc)) from None
    except UploadTooLarge as exc:
        observer.refused("refused")
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except UploadError as exc:
        observer.refused("refused")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if upload.size == 0:
        upload.delete()
        observer.refused("refused")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"uploaded file {upload.filename!r} is empty")
    try:
        if background or upload.size > settings.sync_upload_mb * 1024 * 1024:
            job, _ = clips.submit(upload)
            return JSONResponse(job.model_dump(mode="json", exclude={"report"}),
                                status_code=status.HTTP_202_ACCEPTED, headers={"Location": f"/v1/clips/{job.id}"})
        job = await clips.run(upload, request.is_disconnected)
    except QueueFull as exc:
        upload.delete()
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                            headers={"Retry-After": str(exc.retry_after_s)}) from None
    except ServiceError as exc:  # the service is shutting down
        upload.delete()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if job.status == "cancelled":  # the service is shutting down, or nobody is listening any more
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE if clips.closed else CLIENT_CLOSED_REQUEST,
                            job.error)
    if job.status == "failed":
        raise HTTPException(_clip_error_status(job.error or ""), job.error)
    return JSONResponse(job.report.model_dump(mode="json"))


@router.get("/{job_id}", response_model=ClipJob)
def get_clip(job_id: str, clips: ClipJobsDep) -> ClipJob:
    job = clips.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no clip job {job_id!r} (results are kept for the last "
                            f"{clips.keep} jobs)")
    return job
