"""A real Triton Inference Server on this machine, for tests and `python -m bench fleet`: the tritonserver 2.51
binary of the nvidia-pytriton wheel (Python backend only), as `make triton-server` unpacks it into .cache/triton
(or $EMOTION_TRITON_HOME), serving a repository `python -m export triton --backend python` wrote.

    TRITON_HOME/server/pytriton/tritonserver/bin/tritonserver   the binary (libraries: server/nvidia_pytriton.libs)
    TRITON_HOME/server/pytriton/tritonserver/backends/python/   the Python backend, with the stub for our Python
    TRITON_HOME/venv/                                           the Python models' numpy < 2 and onnxruntime

The Python backend's stub links the system's libpython; the interpreter's own library directory first on
LD_LIBRARY_PATH makes it load the library of the venv's Python, and the venv's bin first on PATH makes the stub
find that venv's packages. The server runs in a process group of its own (with its stub processes), so kill() and
pause() reach them all, and the shared-memory regions a killed server leaves in /dev/shm are removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bench.service_process import ROOT, free_port, wait_until

TRITON_HOME = Path(os.environ.get("EMOTION_TRITON_HOME", ROOT / ".cache" / "triton"))
SHM = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"


class PortTaken(RuntimeError):
    """Another process bound one of the server's ports first."""


def binary(home: Path = TRITON_HOME) -> Path:
    return home / "server" / "pytriton" / "tritonserver" / "bin" / "tritonserver"


def missing_reason(home: Path = TRITON_HOME) -> str | None:
    """Why no tritonserver can start here (None: it can)."""
    if not binary(home).is_file() or not (home / "venv" / "bin" / "python").is_file():
        return f"no tritonserver in {home}: run `make triton-server` (make test does)"
    return None


def _environment(home: Path) -> dict[str, str]:
    python = home / "venv" / "bin" / "python"
    libdir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, str(home / "server" / "nvidia_pytriton.libs")])
    environ["PATH"] = os.pathsep.join([str(home / "venv" / "bin"), environ.get("PATH", "/usr/bin:/bin")])
    return environ


class TritonServer:
    """tritonserver on loopback ports (grpc_port, http_port; default: free ones); its output appended to `log`.
    start() waits until it answers ready; restart() starts it again on the same ports."""

    def __init__(self, repository: Path, log: Path, home: Path = TRITON_HOME, startup_timeout: float = 120.0,
                 grpc_port: int | None = None, http_port: int | None = None):
        reason = missing_reason(home)
        if reason:
            raise FileNotFoundError(reason)
        self.repository, self.log, self.home, self.startup_timeout = repository, log, home, startup_timeout
        self._chosen = grpc_port is None and http_port is None  # ours to choose again if taken meanwhile
        self.grpc_port, self.http_port = grpc_port or free_port(), http_port or free_port()
        self.metrics_port = free_port()
        self.process: subprocess.Popen | None = None
        self._environ = _environment(home)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self) -> TritonServer:
        """Start and wait until ready. Free ports can be taken by another process before the server binds them: then
        (ports chosen here) it starts again on others, up to three times."""
        attempts = 3 if self._chosen else 1
        while True:
            attempts -= 1
            try:
                return self._start()
            except PortTaken:
                self.kill()  # the stubs it had started, their shared memory
                if attempts == 0:
                    raise
                self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()

    def _start(self) -> TritonServer:
        backends = binary(self.home).parents[1] / "backends"
        command = [str(binary(self.home)), "--model-repository", str(self.repository), "--backend-directory",
                   str(backends), "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
                   "--metrics-port", str(self.metrics_port), "--log-verbose", "0", "--exit-timeout-secs", "5"]
        with open(self.log, "ab") as out:
            self._log_from = out.tell()  # this start's own output begins here
            self.process = subprocess.Popen(command, env=self._environ, stdout=out, stderr=out,
                                            start_new_session=True)
        wait_until(self.ready, timeout=self.startup_timeout, interval=0.2)
        return self

    def ready(self) -> bool:
        import httpx

        if self.process.poll() is not None:
            with open(self.log, "rb") as log:
                log.seek(self._log_from)
                tail = log.read().decode(errors="replace")[-3000:]
            if "already in use" in tail:
                raise PortTaken(tail)
            raise RuntimeError(f"tritonserver exited ({self.process.returncode}): {tail}")
        try:
            return httpx.get(f"http://{self.http_url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _signal_group(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def pause(self) -> None:
        """SIGSTOP the server and its stubs: it keeps its sockets open and answers nothing (a hung server)."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crashed server or a pulled cable: no goodbye on the connections."""
        if self.process is None:
            return
        regions = self._own_regions()
        self._signal_group(signal.SIGCONT)  # a paused group would keep its stopped stubs
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # stubs that outlived the server in its group
        except ProcessLookupError:
            pass
        for region in regions:
            (SHM / region).unlink(missing_ok=True)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever is left after 15 s."""
        if self.process is None or self.process.poll() is not None:
            self.kill()
            return
        self._signal_group(signal.SIGCONT)
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def restart(self) -> TritonServer:
        self.kill()
        time.sleep(0.2)
        return self.start()

    def _own_regions(self) -> list[str]:
        """The shared-memory regions of this server's stubs (each stub's second argument), read from /proc."""
        regions = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if os.getpgid(int(proc.name)) != self.process.pid:
                    continue
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except (OSError, ProcessLookupError):
                continue
            if len(argv) > 2 and argv[0].endswith(b"triton_python_backend_stub"):
                regions.append(argv[2].decode())
        return [r for r in regions if r.startswith(SHM_PREFIX)]

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
