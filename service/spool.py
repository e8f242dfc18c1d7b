"""The upload spool: a private folder (mode 0700) the service owns, where uploaded clips live while they are
analysed, and nowhere else.

Each running service writes into its own run folder (`run-<pid>-<random>`) and holds an exclusive lock on a file in
it for as long as it runs. The kernel drops that lock when the process dies, however it dies (SIGKILL, power loss
before reboot), so at start a service removes every run folder whose lock nobody holds: the uploads a crashed run
left behind, and only those; two services sharing one spool never delete each other's uploads.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from service.errors import ServiceError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
GUARD_NAME = ".open.lock"  # held only while a service opens the spool
RUN_PREFIX = "run-"


def default_spool_dir() -> Path:
    """Under the temporary folder, one per user (a fixed name, so that a restarted service finds it again)."""
    return Path(tempfile.gettempdir()) / f"emotion-perception-uploads-{os.getuid()}"


class SpoolError(ServiceError):
    pass


def _private_dir(path: Path) -> None:
    """Create `path` as a 0700 folder, or check that an existing one is a real folder of ours (not a link another
    user planted in a shared /tmp), and make it 0700."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SpoolError(f"cannot create the upload spool {path}: {exc.strerror or exc}") from None
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise SpoolError(f"upload spool {path} is not a folder (a link or a file): set spool_dir to another path")
    if info.st_uid != os.getuid():
        raise SpoolError(f"upload spool {path} belongs to another user (uid {info.st_uid}): set spool_dir")
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)


class UploadSpool:
    """open() clears what earlier runs left and makes this run's folder; new_file() gives a private file for one
    upload; close() removes this run's folder with whatever is still in it."""

    def __init__(self, root: Path, run_dir: Path, lock_fd: int, removed: int):
        self.root, self.run_dir, self._lock_fd = root, run_dir, lock_fd
        self.removed_at_start = removed

    @staticmethod
    def check(root: Path | None = None) -> Path:
        """Make sure the spool folder can be used (created 0700 if missing); SpoolError in one line if not. For
        create_app, so that a bad spool_dir fails before the server starts."""
        root = Path(root) if root is not None else default_spool_dir()
        _private_dir(root)
        return root

    @classmethod
    def open(cls, root: Path | None = None) -> UploadSpool:
        root = cls.check(root)
        # Services starting at once take turns, so none sees another's run folder before its lock is taken.
        guard = os.open(root / GUARD_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            removed = cls._remove_leftovers(root)
            run_dir = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-", dir=root))
            lock_fd = os.open(run_dir / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(guard)
        if removed:
            log.warning("upload spool %s: removed %d leftover upload(s) of an earlier run that did not stop cleanly",
                        root, removed)
        else:
            log.info("upload spool %s: no leftover uploads", root)
        return cls(root, run_dir, lock_fd, removed)

    @staticmethod
    def _remove_leftovers(root: Path) -> int:
        """Remove every run folder no live service holds, and stray files; return how many uploads went."""
        removed = 0
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink() and entry.name.startswith(RUN_PREFIX):
                if _held_by_a_live_run(entry):
                    continue
                removed += sum(1 for f in entry.iterdir() if f.name != LOCK_NAME)
                shutil.rmtree(entry, ignore_errors=True)
            elif (entry.is_file() or entry.is_symlink()) and entry.name != GUARD_NAME:
                removed += 1
                entry.unlink(missing_ok=True)
        return removed

    def new_file(self, prefix: str = "clip-", suffix: str = ".upload") -> tuple[int, Path]:
        """A new private (0600) file in this run's folder: its open descriptor and its path."""
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.run_dir)
        return fd, Path(name)

    def files(self) -> list[Path]:
        """The uploads in this run's folder now (tests, shutdown)."""
        return [f for f in self.run_dir.iterdir() if f.name != LOCK_NAME] if self.run_dir.exists() else []

    def close(self) -> None:
        """Remove this run's folder and everything still in it (uploads of analyses cut short by a shutdown)."""
        left = len(self.files())
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        if left:
            log.info("upload spool: removed %d upload(s) at shutdown", left)


def _held_by_a_live_run(run_dir: Path) -> bool:
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR)
    except OSError:
        return False  # no lock file: a run folder half made, or emptied by hand
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock we may just have taken
    return False
