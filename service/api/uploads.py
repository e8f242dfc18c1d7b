"""Receiving an uploaded clip: the multipart body is streamed into a private file of the upload spool with the size limit
enforced on the whole body while bytes arrive (a 10 GB upload, or a small clip beside a 10 GB extra field, is
refused after max bytes, not after it has filled the disk or the memory).

A body that does not progress (fewer than `BodyPace.min_bytes_per_s` over any window, which includes sending
nothing for a window) is dropped with its file (UploadTooSlow, 408). A full disk is the server's problem: no space
left on any write, or on the last flush, is SpoolFull (507) in one sentence without errno or path, and whatever
write fails, no file stays behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from service.errors import ServiceError, UploadError

if TYPE_CHECKING:
    from service.spool import UploadSpool


class UploadTooLarge(UploadError):
    pass


class UploadAbandoned(UploadError):
    """The client went away before the body was complete."""


class UploadTooSlow(UploadError):
    """The body arrived slower than the floor (or not at all) over a window (answered 408)."""


class ServiceClosing(ServiceError):
    """The service began to shut down while the upload arrived (answered 503)."""


class SpoolFull(ServiceError):
    """No space left in the upload spool (answered 507): the server's condition, not the client's."""

    def __init__(self):
        super().__init__("the server has no room left to store the upload; retry later")


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class BodyPace:
    """The slowest a body may arrive: at least min_bytes_per_s x window_s bytes in every window_s (settings
    upload_min_bytes_per_s, upload_rate_window_s). min_bytes_per_s 0 still drops a body that sends nothing for a
    window."""

    min_bytes_per_s: int
    window_s: float

    @classmethod
    def of(cls, settings) -> BodyPace:
        return cls(settings.upload_min_bytes_per_s, settings.upload_rate_window_s)

    def too_slow(self, got: int) -> bool:
        return got < max(1, self.min_bytes_per_s * self.window_s)

    def message(self) -> str:
        return (f"the upload was dropped: it sent less than {self.min_bytes_per_s} bytes a second over "
                f"{self.window_s:g} s (upload_min_bytes_per_s)")


FRAMING_ALLOWANCE = 64 * 1024  # multipart boundaries and part headers around the clip


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size: int

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def _discard(out, path: Path) -> None:
    """Close (a failing flush ignored: the file goes anyway) and remove a partial upload."""
    try:
        out.close()
    except OSError:
        pass
    path.unlink(missing_ok=True)


async def _paced_chunks(request: Request, pace: BodyPace | None):
    """The body's chunks as they arrive; UploadTooSlow when a window passes with too few bytes, UploadAbandoned
    when the client goes away."""
    window_end = time.monotonic() + pace.window_s if pace else None
    got = 0
    pending = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(request.receive())
            timeout = None if window_end is None else max(0.0, window_end - time.monotonic())
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:  # the window ended with the next chunk still to come
                if pace.too_slow(got):
                    raise UploadTooSlow(pace.message())
                window_end, got = window_end + pace.window_s, 0
                continue
            message, pending = pending.result(), None
            if message["type"] == "http.disconnect":
                raise UploadAbandoned("the client went away during the upload")
            chunk = message.get("body", b"")
            got += len(chunk)
            if window_end is not None and time.monotonic() >= window_end:
                if pace.too_slow(got):
                    raise UploadTooSlow(pace.message())
                window_end, got = time.monotonic() + pace.window_s, 0
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
    finally:
        if pending is not None:
            pending.cancel()


async def receive_clip(request: Request, field: str, max_bytes: int, spool: UploadSpool | None = None,
                      closing: Callable[[], bool] | None = None, pace: BodyPace | None = None) -> ReceivedUpload:
    """Stream the multipart field `field` of the request to a file in `spool` (default: the temporary folder). The
    caller deletes it. The whole body counts against max_bytes (plus a small framing allowance): other parts are
    not stored, but they are not free. `closing()` is asked as chunks arrive: when the service is shutting down the
    upload stops with ServiceClosing. `pace`: the slowest the body may come (None: any)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FRAMING_ALLOWANCE:
        raise UploadTooLarge(f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(f"send the clip as multipart/form-data with a '{field}' field")

    try:
        fd, path = spool.new_file() if spool is not None else tempfile.mkstemp(prefix="clip-", suffix=".upload")
    except OSError as exc:
        if exc.errno in NO_SPACE:  # no inode left
            raise SpoolFull() from None
        raise
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
        async for chunk in _paced_chunks(request, pace):
            body_bytes += len(chunk)
            if closing is not None and closing():
                raise ServiceClosing("the service is shutting down; retry after it has restarted")
            if body_bytes > max_bytes + FRAMING_ALLOWANCE:  # a chunked body has no Content-Length to refuse early
                raise UploadTooLarge(f"upload body is over the limit of {max_bytes} bytes")
            parser.write(chunk)
            if state["too_large"]:
                raise UploadTooLarge(f"upload is over the limit of {max_bytes} bytes")
        parser.finalize()
        out.close()  # the last flush: it may find the disk full too
    except (UploadError, ServiceClosing):
        _discard(out, path)
        raise
    except OSError as exc:  # writing the file failed: the server's condition, never the client's fault
        _discard(out, path)
        if exc.errno in NO_SPACE:
            raise SpoolFull() from None
        raise
    except Exception as exc:  # a malformed multipart body
        _discard(out, path)
        raise UploadError(f"malformed multipart body: {exc}") from None
    except BaseException:  # the request task cancelled (shutdown): no upload may stay behind
        _discard(out, path)
        raise
    if not state["found"]:
        path.unlink(missing_ok=True)
        raise UploadError(f"no '{field}' field in the upload")
    return ReceivedUpload(path, state["filename"] or "upload", state["size"])
