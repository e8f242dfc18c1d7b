"""A real uvicorn server on 127.0.0.1 with a free port, in a background thread: for the upload benchmark
(bench/uploads.py) and the API tests (tests/server.py)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import uvicorn


@contextmanager
def running_server(app, startup_timeout: float = 60.0, send_buffer: int | None = None, **config):
    """send_buffer: SO_SNDBUF of the listening socket, which accepted connections inherit; a small one makes
    writes to a client that does not read back up within a few events instead of megabytes. `config`: more
    uvicorn.Config options (e.g. ws_ping_interval)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()

