"""`python -m bench.gpu_wheels [--out .gpu-wheels]` (`make gpu-wheels`): the wheels that a bare GPU machine
(Python 3.12, PyTorch, onnx, onnxruntime, OpenCV, timm, numpy; no network) lacks for `python -m bench gpu`, at the
versions installed here, for CPython 3.12 on x86-64 Linux, and the project itself as a wheel. Stale wheels are
removed (two versions of one package stop an install), and the folder plus the working tree must stay within the
64 MiB that travels with a device command.

On the GPU machine: pip install --no-index --no-deps --target /tmp/site .gpu-wheels/*.whl, then PYTHONPATH=/tmp/site
(docs/PERFORMANCE.md, "The first GPU run")."""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".gpu-wheels"
LIMIT_MIB = 64
# distribution -> why the run needs it (every one is missing from the GPU image's package list)
NEEDED = {
    "open_clip_torch": "every CLIP method's backbone (models/backbone.py)",
    "ftfy": "open_clip's tokenizer",
    "wcwidth": "ftfy",
    "pydantic": "bundle.json, events, training recipes (models/recipes.py)",
    "pydantic_core": "pydantic (compiled: a cp312 wheel)",
    "pydantic-settings": "service/config.py: EMOTION_BACKEND and the other settings",
    "python-dotenv": "pydantic-settings",
    "typing-inspection": "pydantic",
    "annotated-types": "pydantic",
    "typing_extensions": "pydantic needs a recent one; the image's version is not known",
    "av": "service.ingest (imported by the live inference worker) and the sample clip's real face windows",
}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def pins() -> list[str]:
    """NAME==VERSION of each needed distribution as installed here (the versions the tests ran against)."""
    missing = []
    out = []
    for name in NEEDED:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise SystemExit(f"error: not installed here: {', '.join(missing)} (run make install-dev first)")
    return out


def travelling_tree_bytes() -> int:
    """Bytes of the working tree that a device command sends: tracked files and untracked files git does not
    ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_wheels", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="wheel folder (default .gpu-wheels, ignored)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.whl"):
        stale.unlink()
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(out), *pins()],
                   check=True)
    built_here = not (ROOT / "build").exists()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(out), str(ROOT)], check=True)
    if built_here:  # setuptools builds in the tree: leave no build/ behind that was not there before
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheels = sorted(out.glob("*.whl"))
    wheel_bytes = sum(w.stat().st_size for w in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2 ** 20:7.2f} MiB  {wheel.name}")
    tree = travelling_tree_bytes()
    total = (wheel_bytes + tree) / 2 ** 20
    print(f"{wheel_bytes / 2 ** 20:.1f} MiB of wheels in {out}; with the working tree ({tree / 2 ** 20:.1f} MiB) "
          f"{total:.1f} MiB of the {LIMIT_MIB} MiB a device command carries")
    if total > LIMIT_MIB:
        print(f"error: {total:.1f} MiB is over the {LIMIT_MIB} MiB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
