"""A per-frame emotion classifier someone already has (an ONNX file) -> a `baseline` bundle, in one command:

    python -m export per-frame MODEL.onnx --layout hsemotion|ferplus|custom --out DIR [--calibrate FOLDER]

A layout says how the authors feed and read their model: input side, colour, pixel scale, mean and std, the label
order (and how each label is called here; an extra class such as contempt stays a label of its own), whether the
last two outputs are valence and arousal, and where the weights come from under which licence. Each was read from
its authors' public code (docs/RESEARCH.md, "Bring your own per-frame model"). `custom` takes all of it from flags.

The graph is inspected first; a file that does not fit the layout is refused with one line naming what differs. The
original graph is then wrapped, unchanged, into the bundle's three graphs: frame_encoder.onnx (frames [N, C, S, S]
as the service normalises them -> the model's outputs [N, D]; colour order and NHWC inputs adapted inside; a graph
fixed to batch 1 runs in an ONNX Loop over the frames), window_head.onnx (the mean over the window's frames ->
`logits` [B, K] and, with valence/arousal, `valence_arousal` [B, 2]) and model.onnx (both, on `faces`
[B, 16, C, S, S]). Parity: the bundle's probabilities (and valence/arousal) must equal ONNX Runtime run on the
original file with the layout's own preprocessing, on real face crops (export/real_inputs.py: photographs and the
sample clip; tolerance 1e-4).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from export.onnx_export import ParityError
from export.real_inputs import real_face_crops, real_photo_crops
from models.data.labelled_faces import LABEL_NAMES
from service.bundle import (MODEL_ONNX, BundleSpec, CropSpec, FrameCacheSpec, ModelBundle, TensorSpec, TrainingInfo,
                            file_sha256)
from service.inference.engine import normalise, softmax

log = logging.getLogger(__name__)

NUM_FRAMES = 16
TOLERANCE = 1e-4
VA_OUTPUT = "valence_arousal"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MIN_OPSET = 7  # Loop and Gather as used here; older graphs: onnx.version_converter first


class LayoutMismatch(ValueError):
    """The file does not fit the layout; the message is one line naming what differs."""


@dataclass(frozen=True)
class Layout:
    name: str
    sizes: tuple[int, ...]  # accepted input sides (the first is the default for a graph with free height/width)
    colour: str  # grey | rgb | bgr: what the model's input channels are
    pixel_scale: float  # the model's pixel range before mean/std: 255 (0..255) or 1 (0..1)
    mean: tuple[float, ...]  # per channel, in the model's pixel scale
    std: tuple[float, ...]
    labels: dict[int, tuple[tuple[str, ...], bool]]  # output width -> (authors' label names, last two are V/A)
    margin: float  # the crop's margin (service.bundle.CropSpec)
    channels_last: bool = False  # NHWC input
    source: str = "unknown"
    license: str | None = None
    research_only: bool = False
    research_note: str = ""
    dataset: str | None = None
    described: str = ""  # what the layout takes, for refusals

    @property
    def channels(self) -> int:
        return 1 if self.colour == "grey" else 3

    def reference_input(self, crops: np.ndarray) -> np.ndarray:
        """The authors' preprocessing of face crops at the model's side ([N, S, S, C] uint8, grey or RGB as the
        service crops them): their colour order, pixel scale, mean and std, channel layout."""
        x = crops.astype(np.float32)
        if self.colour == "bgr":
            x = x[..., ::-1]
        x = x / 255.0 * self.pixel_scale
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x if self.channels_last else x.transpose(0, 3, 1, 2), np.float32)

    def bundle_mean_std(self) -> tuple[list[float], list[float]]:
        """mean/std as bundle.json states them: on pixels in [0, 1], in the crop's channel order (RGB)."""
        order = slice(None, None, -1) if self.colour == "bgr" else slice(None)
        return ([m / self.pixel_scale for m in self.mean[order]], [s / self.pixel_scale for s in self.std[order]])


# av-savchenko/face-emotion-recognition python-package/hsemotion_onnx/facial_emotions.py and EmotiEffLib
# emotiefflib/facial_analysis.py: cv2.resize(face, (S, S)) / 255, ImageNet mean/std on RGB, NCHW input "input"
# [batch, 3, S, S] (224 for enet_b0_*, 260 for enet_b2_*); output "output": 8 logits (7 for *_7) in the order below,
# and for *_mtl two more, valence and arousal (their ABAW notebooks read X[:, -2:] as (valence, arousal)).
HSEMOTION_8 = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
HSEMOTION_7 = ("Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
# onnx/models vision/body_analysis/emotion_ferplus README (and ros4hri hri_emotion_recognizer): 64x64 grey, raw 0..255
# pixels, input "Input3" [1, 1, 64, 64], 8 scores in this order; the Model Zoo's licence for it is MIT.
FERPLUS_8 = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")

LAYOUTS: dict[str, Layout] = {
    "hsemotion": Layout(
        "hsemotion", sizes=(224, 260), colour="rgb", pixel_scale=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        labels={7: (HSEMOTION_7, False), 8: (HSEMOTION_8, False), 10: (HSEMOTION_8, True)},
        # their pipelines crop MTCNN's box as it is (EmotiEffLib tests: frame[y1:y2, x1:x2])
        margin=0.0,
        source="HSEmotion / EmotiEffLib (A. V. Savchenko), github.com/av-savchenko/face-emotion-recognition",
        license="Apache-2.0 (the repository's code); weights trained on AffectNet, whose terms allow non-commercial "
                "research and education only",
        research_only=True, dataset="AffectNet",
        research_note="HSEmotion's weights were trained on AffectNet, whose licence allows non-commercial research "
                      "and education only: the bundle is for research",
        described="RGB 224 or 260 px (EfficientNet-B0/B2), ImageNet mean and std, 7, 8 or 8+2 (valence, arousal) "
                  "outputs; MobileFaceNet/DDAMFN 112 px files: use --layout custom"),
    "ferplus": Layout(
        "ferplus", sizes=(64,), colour="grey", pixel_scale=255.0, mean=(0.0,), std=(1.0,),
        labels={8: (FERPLUS_8, False)},
        # FER+ relabels FER2013, whose 48x48 faces are registered with some margin (as fer's mini-Xception's)
        margin=0.1,
        source="ONNX Model Zoo emotion_ferplus (E. Barsoum et al., microsoft/FERPlus; what ros4hri's "
               "hri_emotion_recognizer runs)",
        license="MIT (ONNX Model Zoo); the FER2013 images it learned from carry no stated licence",
        dataset="FER2013 with FER+ labels",
        described="grey 64x64, raw 0..255 pixels, 8 outputs"),
}


def custom_layout(size: int, colour: str, pixel_scale: float, mean: list[float], std: list[float],
                  labels: list[str], valence_arousal: bool, margin: float = 0.2, channels_last: bool = False,
                  source: str | None = None, license: str | None = None, research_only: bool = False) -> Layout:
    """The layout of a model described by flags (`--layout custom`)."""
    channels = 1 if colour == "grey" else 3
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"--mean and --std need {channels} value(s) for {colour} input, got {mean} / {std}")
    if len(labels) < 2:
        raise ValueError("--labels needs the model's label names in its output order (at least two)")
    width = len(labels) + (2 if valence_arousal else 0)
    return Layout("custom", sizes=(size,), colour=colour, pixel_scale=pixel_scale, mean=tuple(mean), std=tuple(std),
                  labels={width: (tuple(labels), valence_arousal)}, margin=margin, channels_last=channels_last,
                  source=source or "unknown", license=license, research_only=research_only,
                  research_note="the weights are marked research only (--research-only)" if research_only else "",
                  described=f"{colour} {size} px, {width} outputs")


def service_label(name: str) -> str:
    """An author's label name as the service names it (happiness -> happy); others kept, lower-cased."""
    key = name.strip().lower()
    return LABEL_NAMES.get(key, key)


# ---- inspecting the graph --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GraphFacts:
    input_name: str
    output_name: str
    size: int
    fixed_batch: bool  # the input's batch is fixed at 1
    width: int  # output values per frame
    opset: int


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def inspect_graph(model: onnx.ModelProto, path: Path, layout: Layout, size: int | None = None) -> GraphFacts:
    """What the graph takes and gives, checked against the layout; LayoutMismatch (one line) where it differs."""
    where = f"{path.name} does not fit layout {layout.name} ({layout.described})"
    graph = model.graph
    initialised = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised]
    if len(inputs) != 1:
        raise LayoutMismatch(f"{where}: it has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}), the layout "
                             "takes one image")
    (inp,) = inputs
    if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise LayoutMismatch(f"{where}: input {inp.name!r} is {TensorProto.DataType.Name(inp.type.tensor_type.elem_type)}"
                             ", not float32")
    dims = _dims(inp)
    if len(dims) != 4:
        raise LayoutMismatch(f"{where}: input {inp.name!r} has shape {dims}, not [batch, C, H, W]")
    c, h, w = (dims[3], dims[1], dims[2]) if layout.channels_last else (dims[1], dims[2], dims[3])
    if c != layout.channels:
        raise LayoutMismatch(f"{where}: input {inp.name!r} has {c} channels (shape {dims}), the layout takes "
                             f"{layout.channels}")
    fixed = [d for d in (h, w) if isinstance(d, int) and d > 0]
    if fixed and (len(fixed) == 1 or h != w):
        raise LayoutMismatch(f"{where}: input {inp.name!r} is {h}x{w} (shape {dims}), not square")
    side = fixed[0] if fixed else (size or layout.sizes[0])
    if size is not None and size != side:
        raise LayoutMismatch(f"{where}: input {inp.name!r} is {side} px (shape {dims}), --size says {size}")
    if side not in layout.sizes:
        raise LayoutMismatch(f"{where}: input {inp.name!r} is {side} px (shape {dims}), the layout takes "
                             f"{' or '.join(map(str, layout.sizes))}")
    batch = dims[0]
    if isinstance(batch, int) and batch not in (0, 1):
        raise LayoutMismatch(f"{where}: input {inp.name!r} has a fixed batch of {batch} (shape {dims})")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise LayoutMismatch(f"{where}: opset {opset}; convert it to opset {MIN_OPSET} or later first "
                             "(onnx.version_converter)")
    output = graph.output[0]
    width = _output_width(model, path, inp.name, output, side, layout)
    if width not in layout.labels:
        known = ", ".join(f"{n} ({'with valence/arousal' if va else 'labels'})" for n, (_, va) in layout.labels.items())
        raise LayoutMismatch(f"{where}: output {output.name!r} gives {width} values per face, the layout reads "
                             f"{known}")
    return GraphFacts(inp.name, output.name, side, batch == 1, width, opset)


def _output_width(model: onnx.ModelProto, path: Path, input_name: str, output: onnx.ValueInfoProto, side: int,
                  layout: Layout) -> int:
    """The first output's values per face: from its declared shape, else by running one blank face."""
    dims = _dims(output)
    if len(dims) == 2 and isinstance(dims[1], int) and dims[1] > 0:
        return dims[1]
    shape = [1, side, side, layout.channels] if layout.channels_last else [1, layout.channels, side, side]
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (value,) = session.run([output.name], {input_name: np.zeros(shape, np.float32)})
    except Exception as exc:  # onnxruntime's errors are untyped
        raise LayoutMismatch(f"{path.name}: ONNX Runtime cannot run it on a {shape} input: {exc}") from None
    if value.ndim != 2:
        raise LayoutMismatch(f"{path.name} does not fit layout {layout.name}: output {output.name!r} has shape "
                             f"{list(value.shape)}, not [batch, values]")
    return int(value.shape[1])


# ---- wrapping it into the bundle's graphs ----------------------------------------------------------------------

@dataclass
class GraphBuilder:
    """Nodes and constants being assembled into one graph."""
    opset: int
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)

    def const(self, name: str, array) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def reduce_mean(self, x: str, axis: int, output: str) -> str:
        if self.opset >= 18:  # axes became an input in opset 18
            return self.node("ReduceMean", [x, self.const(output + "/axes", np.array([axis], np.int64))], output,
                             keepdims=0)
        return self.node("ReduceMean", [x], output, axes=[axis], keepdims=0)


def publish_bundle(bundle: ModelBundle, out_dir: Path, calibrate: Path | None = None,
                   calibrate_whole_image: bool = False) -> ModelBundle:
    """The last steps of every per-frame conversion: calibrate on the labelled folder when one is named, load the
    staged bundle as the service will (it must pass), and move it to out_dir in place of what was there."""
    if calibrate is not None:
        from export.calibrate import calibrate_bundle

        bundle = calibrate_bundle(bundle, calibrate, whole_image=calibrate_whole_image)
    staging = bundle.directory
    ModelBundle.load(staging)  # what the service will do: must pass
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(out_dir))
    return bundle


def _encoder_nodes(g: GraphBuilder, model: onnx.ModelProto, facts: GraphFacts, layout: Layout, frames: str,
                   features: str) -> None:
    """frames [N, C, S, S] (the service's channel order) -> the model's outputs [N, D], nodes into g."""
    prefixed = onnx.compose.add_prefix(model, "m/")
    m_input, m_output = "m/" + facts.input_name, "m/" + facts.output_name
    g.initializers.extend(prefixed.graph.initializer)
    x = frames
    if layout.colour == "bgr":
        x = g.node("Gather", [x, g.const("enc/bgr", np.array([2, 1, 0], np.int64))], "enc/bgr_frames", axis=1)
    if layout.channels_last:
        x = g.node("Transpose", [x], "enc/nhwc_frames", perm=[0, 2, 3, 1])
    if not facts.fixed_batch:
        g.nodes.append(helper.make_node("Identity", [x], [m_input]))
        g.nodes.extend(prefixed.graph.node)
        g.node("Identity", [m_output], features)
        return
    # One frame at a time: Loop(trip count = N) { frame = x[i] as [1, ...]; model; } -> [N, 1, D] -> [N, D]
    one = [1] + ([facts.size, facts.size, layout.channels] if layout.channels_last
                 else [layout.channels, facts.size, facts.size])
    count = g.node("Gather", [g.node("Shape", [x], "enc/shape"), g.const("enc/zero", np.array(0, np.int64))],
                   "enc/count", axis=0)
    body_nodes = [helper.make_node("Gather", [x, "i"], ["enc/frame"], axis=0),
                  helper.make_node("Reshape", ["enc/frame", "enc/one_shape"], [m_input]),
                  *prefixed.graph.node,
                  helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                  helper.make_node("Identity", ["carry_in"], ["carry_out"]),
                  helper.make_node("Identity", [m_output], ["enc/frame_out"])]
    g.const("enc/one_shape", np.array(one, np.int64))
    # Loop before opset 11 wants a loop-carried value: an unused counter stands in
    body = helper.make_graph(body_nodes, "per_frame", [
        helper.make_tensor_value_info("i", TensorProto.INT64, []),
        helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
        helper.make_tensor_value_info("carry_in", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("carry_out", TensorProto.INT64, []),
         helper.make_tensor_value_info("enc/frame_out", TensorProto.FLOAT, [1, facts.width])])
    stacked = "enc/stacked"
    g.nodes.append(helper.make_node("Loop", [count, g.const("enc/true", np.array(True)),
                                             g.const("enc/carry", np.array(0, np.int64))],
                                    ["enc/carried", stacked], body=body))
    g.node("Reshape", [stacked, g.const("enc/flat", np.array([-1, facts.width], np.int64))], features)


def _head_nodes(g: GraphBuilder, features: str, classes: int, width: int, va: bool) -> list[str]:
    """features [B, T, D] -> mean over T -> logits [B, K] (and valence_arousal [B, 2]); returns the outputs."""
    mean = g.reduce_mean(features, 1, "head/mean")
    outputs = [g.node("Gather", [mean, g.const("head/classes", np.arange(classes, dtype=np.int64))], "logits", axis=1)
               if width != classes else g.node("Identity", [mean], "logits")]
    if va:
        outputs.append(g.node("Gather", [mean, g.const("head/va", np.array([classes, classes + 1], np.int64))],
                              VA_OUTPUT, axis=1))
    return outputs


def _save(g: GraphBuilder, model: onnx.ModelProto, inputs: list, outputs: list, path: Path) -> None:
    graph = helper.make_graph(g.nodes, path.stem, inputs, outputs, g.initializers)
    # IR 7 at least: initialisers need not be graph inputs, and subgraphs (the Loop) may read the outer graph's
    out = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=max(model.ir_version, 7),
                            producer_name="emotion-perception export per-frame")
    onnx.checker.check_model(out, full_check=True)
    onnx.save(out, str(path))


def write_graphs(model: onnx.ModelProto, facts: GraphFacts, layout: Layout, staging: Path) -> None:
    """model.onnx, frame_encoder.onnx and window_head.onnx of the bundle, in `staging`."""
    labels, va = layout.labels[facts.width]
    k, d, s, c = len(labels), facts.width, facts.size, layout.channels
    out_specs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])] + (
        [helper.make_tensor_value_info(VA_OUTPUT, TensorProto.FLOAT, ["batch", 2])] if va else [])

    enc = GraphBuilder(facts.opset)
    _encoder_nodes(enc, model, facts, layout, "frames", "features")
    _save(enc, model, [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["frames", c, s, s])],
          [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["frames", d])], staging / "frame_encoder.onnx")

    head = GraphBuilder(facts.opset)
    _head_nodes(head, "features", k, d, va)
    _save(head, model, [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", NUM_FRAMES, d])],
          out_specs, staging / "window_head.onnx")

    whole = GraphBuilder(facts.opset)
    whole.node("Reshape", ["faces", whole.const("win/frames", np.array([-1, c, s, s], np.int64))], "win/frames_in")
    _encoder_nodes(whole, model, facts, layout, "win/frames_in", "win/features")
    whole.node("Reshape", ["win/features", whole.const("win/window", np.array([-1, NUM_FRAMES, d], np.int64))],
               "win/window_features")
    _head_nodes(whole, "win/window_features", k, d, va)
    _save(whole, model, [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["batch", NUM_FRAMES, c, s, s])],
          out_specs, staging / MODEL_ONNX)


# ---- parity and the bundle -------------------------------------------------------------------------------------

def reference_outputs(path: Path, facts: GraphFacts, layout: Layout, crops: np.ndarray) -> np.ndarray:
    """ONNX Runtime on the original file, the layout's own preprocessing: [N, D]."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = layout.reference_input(crops)
    step = 1 if facts.fixed_batch else len(x)
    return np.concatenate([session.run([facts.output_name], {facts.input_name: x[i:i + step]})[0]
                           for i in range(0, len(x), step)])


def check_parity(bundle: ModelBundle, reference: np.ndarray, crops: np.ndarray, tolerance: float = TOLERANCE
                 ) -> dict[str, float]:
    """The bundle's probabilities and valence/arousal on still windows of each crop, through model.onnx and through
    frame_encoder + window_head, against softmax of the reference logits (and its last two values)."""
    spec = bundle.spec
    k = len(spec.labels)
    want_p, want_va = softmax(reference[:, :k].astype(np.float64)), reference[:, k:k + 2]
    windows = np.repeat(crops[:, None], NUM_FRAMES, axis=1)
    whole = ort.InferenceSession(str(bundle.onnx_path), providers=["CPUExecutionProvider"])
    outputs = ["logits"] + ([spec.valence_arousal] if spec.valence_arousal else [])
    got = whole.run(outputs, {"faces": normalise(windows, spec.mean, spec.std)})
    enc = ort.InferenceSession(str(bundle.directory / spec.frame_cache.encoder), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(bundle.directory / spec.frame_cache.head), providers=["CPUExecutionProvider"])
    (features,) = enc.run(["features"], {"frames": normalise(crops[None], spec.mean, spec.std)[0]})
    split = head.run(outputs, {"features": np.repeat(features[:, None], NUM_FRAMES, axis=1)})
    diffs = {"real": float(np.abs(softmax(got[0]) - want_p).max()),
             "real_frame_cache": float(np.abs(softmax(split[0]) - want_p).max())}
    if spec.valence_arousal:
        diffs["real_valence_arousal"] = float(max(np.abs(got[1] - want_va).max(), np.abs(split[1] - want_va).max()))
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= tolerance:
        raise ParityError(f"the bundle differs from ONNX Runtime on the original file by {diffs[worst]:.3g} "
                          f"(> {tolerance:g}) on {len(crops)} real face crops ({worst})")
    return {name: float(f"{v:.3g}") for name, v in diffs.items()}


def convert_per_frame(model_path: str | Path, layout: Layout, out_dir: str | Path, real_clip: Path,
                      size: int | None = None, name: str | None = None, calibrate: Path | None = None,
                      calibrate_whole_image: bool = False, tolerance: float = TOLERANCE,
                      warn: Callable[[str], None] | None = None) -> ModelBundle:
    """Inspect, wrap, check and write the bundle (at out_dir only once every check passed)."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # a file that is not ONNX
        raise LayoutMismatch(f"{model_path.name} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    facts = inspect_graph(model, model_path, layout, size)
    if layout.research_only and warn:
        warn(layout.research_note)
    labels, va = layout.labels[facts.width]
    mean, std = layout.bundle_mean_std()
    crop = CropSpec(margin=layout.margin, align="none", size=facts.size, colour="grey" if layout.channels == 1
                    else "rgb")
    digest = file_sha256(model_path)
    training = TrainingInfo(dataset=layout.dataset, source=f"{layout.source}; file {model_path.name} (sha256 "
                            f"{digest[:16]})", license=layout.license, research_only=layout.research_only or None)
    crops = np.stack(real_photo_crops(facts.size, layout.channels)
                     + real_face_crops(real_clip, facts.size, layout.channels, crop, NUM_FRAMES)[0])
    reference = reference_outputs(model_path, facts, layout, crops)
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        write_graphs(model, facts, layout, staging)
        shape = ["batch", NUM_FRAMES, layout.channels, facts.size, facts.size]
        spec = BundleSpec(
            name=name or f"{layout.name}-{model_path.stem}".replace("_", "-"), method="baseline",
            labels=[service_label(label) for label in labels], source_labels=list(labels), num_frames=NUM_FRAMES,
            image_size=facts.size, channels=layout.channels, mean=mean, std=std,
            inputs=[TensorSpec(name="faces", shape=shape)], output=TensorSpec(name="logits", shape=["batch",
                                                                                                   len(labels)]),
            opset=facts.opset, backbone=f"{layout.name}: {model_path.name}", trained_on=training,
            sha256=file_sha256(staging / MODEL_ONNX), crop=crop, valence_arousal=VA_OUTPUT if va else None,
            frame_cache=FrameCacheSpec(feature_dim=facts.width,
                                       encoder_sha256=file_sha256(staging / "frame_encoder.onnx"),
                                       head_sha256=file_sha256(staging / "window_head.onnx")))
        bundle = ModelBundle(staging, spec)
        bundle.write_spec()
        parity = check_parity(ModelBundle.load(staging), reference, crops, tolerance)
        bundle = ModelBundle(staging, spec.model_copy(update={"parity": parity}))
        bundle.write_spec()
        bundle = publish_bundle(bundle, out_dir, calibrate, calibrate_whole_image)
    log.info("bundle %s written to %s (parity %s)", bundle.spec.name, out_dir, bundle.spec.parity)
    return ModelBundle.load(out_dir)
