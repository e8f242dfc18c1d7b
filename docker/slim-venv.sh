#!/bin/sh
# Leaves in a service virtual environment only what serving needs; both images run it after `pip install .` in
# their build stage (from the directory holding pyproject.toml). Measured effect: README.md, "Images".
set -eu
VENV=${1:-/opt/venv}
PY="$VENV/bin/python"
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

# Headless OpenCV instead of the GUI build that `trackers` asks for: the GUI one needs libGL (Mesa, LLVM). Both
# install the same cv2 module, so the headless one is reinstalled after the other's removal.
# matplotlib and what only it uses: `analyze --plot` draws, and says so when it is missing; supervision imports it
# only to draw. pip and setuptools: nothing is installed at run time.
"$PY" -m pip uninstall -y -q opencv-python matplotlib fonttools kiwisolver contourpy cycler pyparsing \
    python-dateutil tzdata
"$PY" -m pip install -q --no-compile --no-deps --force-reinstall "$(grep -o 'opencv-python-headless==[0-9.]*' pyproject.toml)"
"$PY" -m pip uninstall -y -q pip setuptools

# Parts of packages the service never imports (checked on serve and analyze, both detectors and trackers): SciPy's
# statistics, file formats, signal and image processing, integration, clustering; ONNX Runtime's model-conversion
# tools; Haar cascades other than the frontal-face one (service/detect/haar.py).
rm -rf "$SITE"/scipy/stats "$SITE"/scipy/io "$SITE"/scipy/signal "$SITE"/scipy/ndimage "$SITE"/scipy/odr \
    "$SITE"/scipy/misc "$SITE"/scipy/datasets "$SITE"/scipy/integrate "$SITE"/scipy/cluster "$SITE"/scipy/fftpack \
    "$SITE"/scipy/differentiate \
    "$SITE"/onnxruntime/transformers "$SITE"/onnxruntime/quantization "$SITE"/onnxruntime/tools
find "$SITE"/cv2/data -name '*.xml' ! -name haarcascade_frontalface_default.xml -delete
# Test suites, C/C++/Cython sources and headers, type stubs; no byte-code: Python compiles in memory at start-up
# (a few seconds) rather than carrying ~100 MB of .pyc.
find "$VENV" -depth -type d \( -name tests -o -name __pycache__ \) -exec rm -rf {} +
find "$VENV" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.c' -o -name '*.h' -o -name '*.hpp' \
    -o -name '*.cpp' -o -name '*.pyi' \) -delete
# PyAV's Cython modules carry their debug symbols (24 of its 31 MB). Only PyAV's: stripping the libraries vendored
# under *.libs breaks some of them (auditwheel patched them; "ELF load command address/offset not page-aligned").
if command -v strip >/dev/null; then
    find "$SITE"/av -name '*.so' -exec strip --strip-unneeded {} +
else
    echo "slim-venv.sh: no strip (binutils) here; PyAV keeps its debug symbols" >&2
fi
