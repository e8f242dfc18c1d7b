"""Contract 1, the model bundle: a directory with model.onnx and bundle.json, written by export/, read here.

`BundleSpec` is the schema of bundle.json; `ModelBundle` is a validated bundle on disk. The service needs nothing
but a bundle directory to run a model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.errors import BundleError

BUNDLE_JSON = "bundle.json"
MODEL_ONNX = "model.onnx"
BUNDLE_FORMAT_VERSION = 1

Method = Literal["duse", "ous", "clip_guided", "pe_clip", "dk_clip", "dfer_clip", "baseline"]


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    # Symbolic dimensions (the batch axis) are strings, fixed ones integers.
    shape: list[int | str]
    dtype: str = "float32"


class FrameCacheSpec(BaseModel):
    """Optional split of the graph for models whose frames pass the encoder independently: the service encodes each
    frame once (frame_encoder: frames [N,C,H,W] -> features [N,D]) and runs only the head per window
    (window_head: features [B,T,D] -> logits), instead of encoding a frame again in every overlapping window.
    Scene-aware bundles encode scene frames with the same encoder; their head also takes scene_features [B,T,D]."""

    model_config = ConfigDict(frozen=True)
    encoder: str = "frame_encoder.onnx"
    head: str = "window_head.onnx"
    feature_dim: int = Field(gt=0)
    encoder_sha256: str
    head_sha256: str


class CropSpec(BaseModel):
    """How the model's face crops were made (service.crops.CropPolicy): models.prepare and the service crop the
    same way. A bundle without it gets the service's face_margin, no alignment."""

    model_config = ConfigDict(frozen=True)
    margin: float = Field(ge=0, description="square face box enlarged by this fraction of its side on each side")
    align: Literal["none", "eyes"] = Field("none", description="eyes: turned about the face centre so the eyes "
                                           "are level (from the detector's eye keypoints)")
    size: int = Field(gt=0, description="crop side in pixels (= image_size)")
    colour: Literal["grey", "rgb"] = Field(description="grey or RGB (= channels 1 or 3)")


class TrainingInfo(BaseModel):
    dataset: str | None = None
    fold: int | None = None
    uar: float | None = Field(None, description="unweighted average recall, 0..1, where known")
    war: float | None = Field(None, description="weighted average recall (accuracy), 0..1, where known")
    source: str | None = Field(None, description="where the weights came from")
    activation: str | None = Field(None, description="the CLIP towers' activation and how it was decided "
                                                     "(quick_gelu or gelu), as trained")
    license: str | None = Field(None, description="the weights' licence as their source states it; absent: unknown")
    research_only: bool | None = Field(None, description="true where the weights are known to be for research use "
                                                         "only (e.g. trained on a dataset licensed for research)")

    @property
    def licence(self) -> str:
        """The licence as the service shows it: 'unknown' when none was recorded."""
        return self.license or "unknown"

    @property
    def provenance(self) -> str:
        """One line: where the weights came from and under which licence."""
        note = " (research use only)" if self.research_only else ""
        return f"{self.source or 'source unknown'}; licence: {self.licence}{note}"


class Calibration(BaseModel):
    """Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): probabilities are
    softmax(logits / temperature), the temperature fitted by minimising the negative log-likelihood on labelled data
    the model did not learn from. The most probable label never changes; only how sure the model says it is."""

    model_config = ConfigDict(frozen=True)
    temperature: float = Field(gt=0)
    fitted_on: str = Field(description="the labelled data the temperature was fitted on")
    samples: int = Field(ge=0)
    ece_before: float | None = Field(None, ge=0, le=1, description="expected calibration error there at T=1")
    ece_after: float | None = Field(None, ge=0, le=1, description="... and at the fitted temperature")


class Agreement(BaseModel):
    """How far a cheaper bundle (int8, or a smaller input than the model was built for) departs from the fp32
    PyTorch model it came from, on real face windows: export measures it and refuses a bundle below a floor."""

    reference: str = Field(description="what the bundle was compared with")
    windows: int = Field(ge=0, description="real face windows compared")
    top1: float = Field(ge=0, le=1, description="share of windows with the same top label")
    max_prob_diff: float = Field(ge=0, description="largest |p_bundle - p_reference| over windows and labels")


class BundleSpec(BaseModel):
    """bundle.json."""

    model_config = ConfigDict(frozen=True, extra="allow")

    format_version: int = BUNDLE_FORMAT_VERSION
    name: str
    method: Method
    labels: list[str] = Field(min_length=2)
    num_frames: int = Field(gt=0)
    image_size: int = Field(gt=0)
    channels: Literal[1, 3]
    mean: list[float]
    std: list[float]
    inputs: list[TensorSpec]
    output: TensorSpec
    opset: int
    backbone: str | None = None
    trained_on: TrainingInfo = TrainingInfo()
    sha256: str = Field(description="sha256 of model.onnx")
    parity: dict[str, float] = Field(default_factory=dict, description="export-time max abs differences")
    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp32", description="arithmetic of the graph (inputs stay float32); int8: ONNX Runtime dynamic quantisation "
                            "of the matrix multiplies, for CPUs")
    agreement: Agreement | None = Field(None, description="int8 or resized bundles: agreement with the fp32 model")
    tensorrt_cache: str | None = Field(None, description="directory in the bundle with a prebuilt TensorRT engine")
    frame_cache: FrameCacheSpec | None = Field(None, description="per-frame encoder + window head, where possible")
    crop: CropSpec | None = Field(None, description="how the face crops were made; absent: the service's margin")
    valence_arousal: str | None = Field(
        None, description="a model with its own valence and arousal: the name of a second graph output [batch, 2] "
                          "(valence, arousal; values outside [-1, 1] are clipped). The service reads it and events "
                          "say va_source 'model'; without it they take theirs from the category table ('categories')")
    calibration: Calibration | None = Field(None, description="temperature scaling the service applies to the logits")
    source_labels: list[str] | None = Field(None, description="the labels as the model's authors name them, in "
                                                              "output order (`labels` are the service's names)")
    text_features: Literal["baked", "none"] = Field(
        "none", description="baked: class text features were computed at export and are constants in the graph")

    @model_validator(mode="after")
    def _consistent(self) -> "BundleSpec":
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean/std need {self.channels} values (channels), got {self.mean} / {self.std}")
        names = [t.name for t in self.inputs]
        if names[:1] != ["faces"]:
            raise ValueError(f"the first input must be 'faces', got {names}")
        faces = self.inputs[0].shape
        expected = [self.num_frames, self.channels, self.image_size, self.image_size]
        if len(faces) != 5 or faces[1:] != expected:
            raise ValueError(f"input 'faces' must be [batch, {', '.join(map(str, expected))}], got {faces}")
        if self.output.name != "logits" or len(self.output.shape) != 2 or self.output.shape[1] != len(self.labels):
            raise ValueError(f"output must be 'logits' [batch, {len(self.labels)}], got {self.output}")
        if self.crop and (self.crop.size != self.image_size or self.crop.colour != ("grey", "rgb")[self.channels // 3]):
            raise ValueError(f"crop says {self.crop.size} px {self.crop.colour}, the model takes {self.image_size} px "
                             f"with {self.channels} channel(s)")
        if self.method == "ous" and "scene" not in names:
            raise ValueError("an OUS bundle needs a 'scene' input")
        if self.valence_arousal in ("logits", *names):
            raise ValueError(f"valence_arousal names the output {self.valence_arousal!r}, which is not a second output")
        if self.source_labels is not None and len(self.source_labels) != len(self.labels):
            raise ValueError(f"source_labels has {len(self.source_labels)} names for {len(self.labels)} labels")
        return self

    @property
    def temperature(self) -> float:
        """What the logits are divided by before the softmax (1: uncalibrated)."""
        return self.calibration.temperature if self.calibration else 1.0

    @property
    def needs_scene(self) -> bool:
        return any(t.name == "scene" for t in self.inputs)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelBundle:
    """A bundle directory whose bundle.json parsed and whose model.onnx matches its recorded sha256."""

    def __init__(self, directory: Path, spec: BundleSpec):
        self.directory = directory
        self.spec = spec

    @property
    def onnx_path(self) -> Path:
        return self.directory / MODEL_ONNX

    @classmethod
    def load(cls, directory: str | Path, verify_sha256: bool = True) -> "ModelBundle":
        directory = Path(directory)
        if not directory.is_dir():
            raise BundleError(f"model bundle not found: {directory} is not a directory "
                              f"(a bundle is a directory with {MODEL_ONNX} and {BUNDLE_JSON}; make one with `python -m export`)")
        for required in (BUNDLE_JSON, MODEL_ONNX):
            if not (directory / required).is_file():
                raise BundleError(f"model bundle {directory} has no {required}")
        try:
            spec = BundleSpec.model_validate(json.loads((directory / BUNDLE_JSON).read_text()))
        except json.JSONDecodeError as exc:
            raise BundleError(f"{directory / BUNDLE_JSON} is not valid JSON: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "bundle"
            raise BundleError(f"{directory / BUNDLE_JSON}: {where}: {first['msg']}") from None
        if verify_sha256:
            files = [(MODEL_ONNX, spec.sha256)]
            if spec.frame_cache:
                files += [(spec.frame_cache.encoder, spec.frame_cache.encoder_sha256),
                          (spec.frame_cache.head, spec.frame_cache.head_sha256)]
            for name, expected in files:
                if not (directory / name).is_file():
                    raise BundleError(f"model bundle {directory} has no {name}")
                actual = file_sha256(directory / name)
                if actual != expected:
                    raise BundleError(f"{directory / name} has sha256 {actual}, but {BUNDLE_JSON} says "
                                      f"{expected}: the files do not belong together (re-export the bundle)")
        return cls(directory, spec)

    def write_spec(self) -> None:
        (self.directory / BUNDLE_JSON).write_text(self.spec.model_dump_json(indent=2, exclude_none=True) + "\n")
