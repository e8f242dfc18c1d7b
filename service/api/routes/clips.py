"""Uploaded clips: POST a video, get its emotion timeline (ClipReport); large ones are processed in the background."""

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from service.api.clip_jobs import ClipJob
from service.api.deps import ServicesDep
from service.api.uploads import UploadTooLarge, receive_clip
from service.errors import UploadError

router = APIRouter(prefix="/v1/clips", tags=["clips"])

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the video clip"}}}}}}}


def _clip_error_status(message: str) -> int:
    return status.HTTP_400_BAD_REQUEST if "empty" in message else status.HTTP_422_UNPROCESSABLE_CONTENT


@router.post("", openapi_extra=UPLOAD_BODY, response_model=None, responses={
    200: {"description": "the clip's report (ClipReport)"},
    202: {"description": "accepted for background analysis; poll the Location"},
    400: {"description": "empty upload or no 'file' field"}, 413: {"description": "over the upload limit"},
    422: {"description": "not a video, or corrupt"}})
async def post_clip(request: Request, services: ServicesDep, background: bool = False) -> JSONResponse:
    """Analyse a clip completely (every frame decoded, sampled to sample_fps). Clips over sync_upload_mb, or with
    `?background=true`, are answered 202 with `Location: /v1/clips/{id}`. The upload is deleted when the analysis
    ends; frames are not stored."""
    settings = services.settings
    try:
        upload = await receive_clip(request, "file", int(settings.max_upload_mb * 1024 * 1024))
    except UploadTooLarge as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except UploadError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if upload.size == 0:
        upload.delete()
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"uploaded file {upload.filename!r} is empty")
    if background or upload.size > settings.sync_upload_mb * 1024 * 1024:
        job, _ = services.clips.submit(upload)
        return JSONResponse(job.model_dump(mode="json", exclude={"report"}), status_code=status.HTTP_202_ACCEPTED,
                            headers={"Location": f"/v1/clips/{job.id}"})
    job = await services.clips.run(upload)
    if job.status == "failed":
        raise HTTPException(_clip_error_status(job.error or ""), job.error)
    return JSONResponse(job.report.model_dump(mode="json"))


@router.get("/{job_id}", response_model=ClipJob)
def get_clip(job_id: str, services: ServicesDep) -> ClipJob:
    job = services.clips.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no clip job {job_id!r} (results are kept for the last "
                            f"{services.clips.keep} jobs)")
    return job
