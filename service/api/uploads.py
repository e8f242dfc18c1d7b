"""Receiving an uploaded clip: the multipart body is streamed into a private file of the upload spool with the size limit
enforced on the whole body while bytes arrive (a 10 GB upload, or a small clip beside a 10 GB extra field, is
refused after max bytes, not after it has filled the disk or the memory)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import ServiceError, UploadError

if TYPE_CHECKING:
    from service.spool import UploadSpool


class UploadTooLarge(UploadError):
    pass


class UploadAbandoned(UploadError):
    """The client went away before the body was complete."""


class ServiceClosing(ServiceError):
    """The service began to shut down while the upload arrived (answered 503)."""


FRAMING_ALLOWANCE = 64 * 1024  # multipart boundaries and part headers around the clip


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size: int

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


async def receive_clip(request: Request, field: str, max_bytes: int, spool: UploadSpool | None = None,
                      closing: Callable[[], bool] | None = None) -> ReceivedUpload:
    """Stream the multipart field `field` of the request to a file in `spool` (default: the temporary folder). The
    caller deletes it. The whole body counts against max_bytes (plus a small framing allowance): other parts are
    not stored, but they are not free. `closing()` is asked as chunks arrive: when the service is shutting down the
    upload stops with ServiceClosing."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FRAMING_ALLOWANCE:
        raise UploadTooLarge(f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(f"send the clip as multipart/form-data with a '{field}' field")

    fd, path = spool.new_file() if spool is not None else tempfile.mkstemp(prefix="clip-", suffix=".upload")
    path = Path(path)
    state = {"header_field": b"", "header_value": b"", "headers": {}, "in_field": False, "found": False,
             "size": 0, "filename": "", "too_large": False}
    out = os.fdopen(fd, "wb")

    def on_part_begin():
        state["headers"], state["in_field"] = {}, False

    def on_header_field(data, start, end):
        state["header_field"] += data[start:end]

    def on_header_value(data, start, end):
        state["header_value"] += data[start:end]

    def on_header_end():
        state["headers"][state["header_field"].lower()] = state["header_value"]
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished():
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name", b"").decode(errors="replace") == field and not state["found"]:
            state["in_field"] = state["found"] = True
            state["filename"] = disposition.get(b"filename", b"").decode(errors="replace")

    def on_part_data(data, start, end):
        if not state["in_field"] or state["too_large"]:
            return
        state["size"] += end - start
        if state["size"] > max_bytes:
            state["too_large"] = True
            return
        out.write(data[start:end])

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data})
    body_bytes = 0
    try:
        async for chunk in request.stream():
            body_bytes += len(chunk)
            if closing is not None and closing():
                raise ServiceClosing("the service is shutting down; retry after it has restarted")
            if body_bytes > max_bytes + FRAMING_ALLOWANCE:  # a chunked body has no Content-Length to refuse early
                raise UploadTooLarge(f"upload body is over the limit of {max_bytes} bytes")
            parser.write(chunk)
            if state["too_large"]:
                raise UploadTooLarge(f"upload is over the limit of {max_bytes} bytes")
        parser.finalize()
    except ClientDisconnect:
        out.close()
        path.unlink(missing_ok=True)
        raise UploadAbandoned("the client went away during the upload") from None
    except (UploadError, ServiceClosing):
        out.close()
        path.unlink(missing_ok=True)
        raise
    except Exception as exc:  # a malformed multipart body
        out.close()
        path.unlink(missing_ok=True)
        raise UploadError(f"malformed multipart body: {exc}") from None
    except BaseException:  # the request task cancelled (shutdown): no upload may stay behind
        out.close()
        path.unlink(missing_ok=True)
        raise
    out.close()
    if not state["found"]:
        path.unlink(missing_ok=True)
        raise UploadError(f"no '{field}' field in the upload")
    return ReceivedUpload(path, state["filename"] or "upload", state["size"])
