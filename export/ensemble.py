"""Several per-frame bundles read together as one: the mean of their calibrated probabilities, in one ONNX graph.

    python -m export ensemble --out DIR [--member BUNDLE ...] [--calibrate FOLDER [--calibrate-whole-image]]

The embedded default ensemble is fer's mini-Xception (64 px grey, a 10 % margin) and face-api.js's expression net
(112 px RGB, no margin), which read real faces best together (docs/RESEARCH.md, "Which embedded model reads real
faces best"). A bundle declares one crop, so the ensemble takes one crop that holds every member's: RGB, the largest
margin, at the side where the member with the most pixels gets its own crop as an exact slice (136 px, margin
12/112: face-api's 112 px are its centre). Inside the graph each member then gets what the service would have given
it: its region of the crop (area-averaged to its side, as cv2.INTER_AREA does when the service shrinks a crop), grey
where it is grey (ITU-R BT.601 weights, as cv2.COLOR_BGR2GRAY), its mean and std, its own frame encoder; the window
head runs each member's window head, divides its logits by the member's temperature, takes the softmax, puts the
labels into the first member's order and averages. `logits` are the log of that mean, so the service's softmax at
T=1 gives the mean back; the ensemble's own temperature (bundle.json `calibration`: the recorded one for the
embedded members, or fitted on `--calibrate FOLDER` with the members') sharpens or softens that mean.

Checks, both on real faces: the bundle's graphs (model.onnx, and frame_encoder + window_head) against the members'
own ONNX graphs fed the same preprocessing in NumPy (`parity`, within 1e-4); and the bundle as the service runs it
against the members run separately by the service, each on its own crop of the same photographs (`agreement`: the
crops differ by resampling only, so this is close, not equal).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from export.onnx_export import ParityError
from export.per_frame import GraphBuilder, publish_bundle
from service.bundle import (MODEL_ONNX, Agreement, BundleSpec, Calibration, CropSpec, FrameCacheSpec, ModelBundle,
                            TensorSpec, TrainingInfo, file_sha256)
from service.config import ASSETS_DIR
from service.inference.engine import normalise, softmax

log = logging.getLogger(__name__)

NAME = "expression-ensemble"
TOLERANCE = 1e-4
# The members run by the service on its own crops of the ensemble's crop (a slice, cv2.resize, cv2 grey): what is
# left is the uint8 rounding of those crops (seen on real faces: up to 0.0096).
SERVICE_TOLERANCE = 0.02
GREY = np.array([0.299, 0.587, 0.114], np.float32)  # cv2.COLOR_RGB2GRAY's weights (ITU-R BT.601)
# The log of a probability: floored so that a probability rounded to 0 gives a finite logit.
LOG_FLOOR = 1e-30
BUNDLES = ASSETS_DIR / "bundles"
DEFAULT_MEMBERS = (BUNDLES / "fer-mini-xception", BUNDLES / "faceapi-expression")
# mini-Xception's bundle is served uncalibrated (as its responsiveness figures were measured); inside the ensemble
# it is calibrated as `python -m bench.real_faces` fitted it on the CK+48 faces of even-numbered subjects (CK+, Lucey
# et al. 2010; never reported on), 2026-12-07, beside face-api's own recorded temperature.
RECORDED_MEMBER_CALIBRATION = {
    "fer-mini-xception": Calibration(temperature=1.3539, fitted_on="ckplus48-calib", samples=495, ece_before=0.0672,
                                     ece_after=0.0568),
}

# The mean of the two calibrated members is under-confident; a temperature on top, fitted by the same run on the same
# faces, sharpens it (ECE on the sets it is judged by, T=1 -> this: faceapi-js 0.215 -> 0.134, ros4hri 0.301 ->
# 0.199, CK+48-test 0.112 -> 0.031; docs/RESEARCH.md). It changes no label, only how sure the ensemble says it is.
RECORDED_CALIBRATION = Calibration(temperature=0.6282, fitted_on="ckplus48-calib", samples=495, ece_before=0.1088,
                                   ece_after=0.0455)


@dataclass(frozen=True)
class Member:
    bundle: ModelBundle
    calibration: Calibration | None  # the temperature its logits are divided by before the mean

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration else 1.0


@dataclass(frozen=True)
class Geometry:
    """The ensemble's crop and where each member's crop lies in it."""
    size: int  # side in pixels
    margin: float  # the service's margin for it (service.crops.square_box)
    regions: tuple[tuple[int, int], ...]  # per member: (offset, side) in whole pixels of the ensemble crop


def crop_geometry(crops: list[CropSpec]) -> Geometry:
    """One crop holding every member's crop: the largest margin, at the scale of the member with the most pixels,
    grown to whole pixels on each side so that member's crop is an exact slice; every member's region is snapped
    to whole pixels (mini-Xception's 10 % margin becomes 11/112), so the service's own crops of the ensemble crop
    (a slice, cv2.resize) are what the graph computes."""
    if len({c.align for c in crops}) != 1:
        raise ValueError(f"members crop with different alignments ({', '.join(c.align for c in crops)}); an "
                         "ensemble takes one crop")
    anchor = max(crops, key=lambda c: c.size)
    box = anchor.size / (1 + 2 * anchor.margin)  # the detector's box, in pixels of the anchor's crop
    widest = max(c.margin for c in crops)
    size = anchor.size + 2 * math.ceil(round(box * (widest - anchor.margin), 6))
    regions = []
    for c in crops:
        offset = round((size - box * (1 + 2 * c.margin)) / 2)
        side = size - 2 * offset
        if side < c.size:
            raise ValueError(f"a member takes {c.size} px from {side} px of the ensemble's crop (it would be "
                             f"enlarged); the member with the most pixels must have the smallest margin")
        regions.append((offset, side))
    return Geometry(size, (size / box - 1) / 2, tuple(regions))


def area_matrix(source: int, size: int, offset: int = 0, side: int | None = None) -> np.ndarray:
    """[size, source]: the region [offset, offset + side) of a line of `source` pixels shrunk to `size` pixels by
    averaging the source pixels under each output pixel, weighted by overlap (cv2.INTER_AREA; an output pixel that
    covers whole pixels exactly copies them). A @ image @ A.T resizes an image."""
    side = source - offset if side is None else side
    step = side / size
    matrix = np.zeros((size, source), np.float64)
    for j in range(size):
        start, end = offset + j * step, offset + (j + 1) * step
        for x in range(max(0, math.floor(start)), min(source, math.ceil(end))):
            matrix[j, x] = max(0.0, min(end, x + 1) - max(start, x))
        matrix[j] /= matrix[j].sum()
    return matrix.astype(np.float32)


def member_order(member: BundleSpec, labels: list[str]) -> list[int]:
    """Where each of the ensemble's labels is among the member's outputs."""
    if sorted(member.labels) != sorted(labels):
        raise ValueError(f"member {member.name} has labels {member.labels}, the ensemble {labels}: members must share "
                         "one label set")
    return [member.labels.index(label) for label in labels]


def load_members(directories: list[Path], calibrate: Path | None = None, whole_image: bool = False) -> list[Member]:
    """The member bundles, each with its temperature: fitted on `calibrate` (a labelled folder) where given, else
    the bundle's own, else the one recorded here."""
    from export.calibrate import calibrate_bundle

    members = []
    for directory in directories:
        bundle = ModelBundle.load(directory)
        spec = bundle.spec
        if spec.method != "baseline" or spec.frame_cache is None or spec.needs_scene or spec.valence_arousal:
            raise ValueError(f"{directory}: an ensemble member must be a per-frame bundle (method baseline, with a "
                             "frame encoder, no scene input, no valence/arousal output)")
        if spec.crop is None:
            raise ValueError(f"{directory}: an ensemble member must declare its crop (bundle.json `crop`)")
        if calibrate is not None:
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / directory.name
                shutil.copytree(directory, copy)
                calibration = calibrate_bundle(ModelBundle.load(copy), calibrate, whole_image=whole_image
                                               ).spec.calibration
        else:
            calibration = spec.calibration or RECORDED_MEMBER_CALIBRATION.get(spec.name)
        members.append(Member(bundle, calibration))
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    return members


# ---- the graphs ----------------------------------------------------------------------------------------------

def _inline(g: GraphBuilder, path: Path, prefix: str, feeds: dict[str, str]) -> str:
    """A member's graph (file) into g, its inputs fed from `feeds`; returns the name of its first output."""
    model = onnx.compose.add_prefix(onnx.load(str(path)), prefix)
    g.initializers.extend(model.graph.initializer)
    for name, source in feeds.items():
        g.node("Identity", [source], prefix + name)
    g.nodes.extend(model.graph.node)
    return model.graph.output[0].name


def _encoder_nodes(g: GraphBuilder, members: list[Member], geometry: Geometry, frames: str, features: str) -> None:
    """frames [N, 3, S, S] (RGB in [0, 1]) -> every member's features side by side [N, D1 + D2 + ...]."""
    parts = []
    for i, (member, (offset, side)) in enumerate(zip(members, geometry.regions)):
        spec, pre = member.bundle.spec, f"pre{i}/"
        x = frames
        if spec.channels == 1:
            x = g.node("Conv", [x, g.const(pre + "grey", GREY.reshape(1, 3, 1, 1))], pre + "grey_frames")
        rows = area_matrix(geometry.size, spec.image_size, offset, side)
        x = g.node("MatMul", [g.const(pre + "rows", rows), x], pre + "rows_resized")
        x = g.node("MatMul", [x, g.const(pre + "cols", np.ascontiguousarray(rows.T))], pre + "resized")
        shape = (1, spec.channels, 1, 1)
        x = g.node("Sub", [x, g.const(pre + "mean", np.asarray(spec.mean, np.float32).reshape(shape))], pre + "centred")
        x = g.node("Div", [x, g.const(pre + "std", np.asarray(spec.std, np.float32).reshape(shape))], pre + "input")
        encoder = member.bundle.directory / spec.frame_cache.encoder
        parts.append(_inline(g, encoder, f"m{i}/", {"frames": x}))
    g.node("Concat", parts, features, axis=1)


def _head_nodes(g: GraphBuilder, members: list[Member], labels: list[str], features: str) -> None:
    """features [B, T, D1 + D2 + ...] -> logits [B, K]: log of the mean of the members' calibrated probabilities."""
    probs, start = [], 0
    for i, member in enumerate(members):
        spec, pre = member.bundle.spec, f"h{i}/"
        end = start + spec.frame_cache.feature_dim
        part = g.node("Slice", [features, g.const(pre + "start", np.array([start], np.int64)),
                                g.const(pre + "end", np.array([end], np.int64)),
                                g.const(pre + "axis", np.array([2], np.int64))], pre + "sliced")
        logits = _inline(g, member.bundle.directory / spec.frame_cache.head, pre, {"features": part})
        scaled = g.node("Div", [logits, g.const(pre + "temperature", np.array(member.temperature, np.float32))],
                        pre + "scaled")
        p = g.node("Softmax", [scaled], pre + "probs", axis=-1)
        order = member_order(spec, labels)
        if order != list(range(len(labels))):
            p = g.node("Gather", [p, g.const(pre + "order", np.array(order, np.int64))], pre + "ordered", axis=1)
        probs.append(p)
        start = end
    total = g.node("Sum", probs, "ens/sum")
    mean = g.node("Mul", [total, g.const("ens/share", np.array(1 / len(members), np.float32))], "ens/mean")
    floored = g.node("Max", [mean, g.const("ens/floor", np.array(LOG_FLOOR, np.float32))], "ens/floored")
    g.node("Log", [floored], "logits")


def _save(g: GraphBuilder, opset: int, inputs: list, outputs: list, path: Path) -> None:
    graph = helper.make_graph(g.nodes, path.stem, inputs, outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8,
                              producer_name="emotion-perception export ensemble")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def write_graphs(members: list[Member], geometry: Geometry, labels: list[str], num_frames: int, opset: int,
                 staging: Path) -> int:
    """frame_encoder.onnx, window_head.onnx and model.onnx in `staging`; returns the feature width."""
    s, k = geometry.size, len(labels)
    d = sum(m.bundle.spec.frame_cache.feature_dim for m in members)
    logits = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])]

    enc = GraphBuilder(opset)
    _encoder_nodes(enc, members, geometry, "frames", "features")
    _save(enc, opset, [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["frames", 3, s, s])],
          [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["frames", d])], staging / "frame_encoder.onnx")

    head = GraphBuilder(opset)
    _head_nodes(head, members, labels, "features")
    _save(head, opset, [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", num_frames, d])],
          logits, staging / "window_head.onnx")

    whole = GraphBuilder(opset)
    whole.node("Reshape", ["faces", whole.const("win/frames", np.array([-1, 3, s, s], np.int64))], "win/frames_in")
    _encoder_nodes(whole, members, geometry, "win/frames_in", "win/features")
    whole.node("Reshape", ["win/features", whole.const("win/window", np.array([-1, num_frames, d], np.int64))],
               "win/window_features")
    _head_nodes(whole, members, labels, "win/window_features")
    _save(whole, opset, [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["batch", num_frames, 3, s, s])],
          logits, staging / MODEL_ONNX)
    return d


# ---- checks --------------------------------------------------------------------------------------------------

def reference_probabilities(members: list[Member], geometry: Geometry, labels: list[str], crops: np.ndarray
                            ) -> np.ndarray:
    """The members' own graphs on still windows of each ensemble crop ([N, S, S, 3] uint8 RGB), preprocessed in
    NumPy as the ensemble's graph does it; the mean of their calibrated probabilities [N, K]."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    probs = []
    for member, (offset, side) in zip(members, geometry.regions):
        spec = member.bundle.spec
        pixels = np.einsum("nchw,c->nhw", x, GREY)[:, None] if spec.channels == 1 else x
        rows = area_matrix(geometry.size, spec.image_size, offset, side)
        resized = rows @ pixels @ rows.T
        frames = ((resized - np.asarray(spec.mean, np.float32)[:, None, None])
                  / np.asarray(spec.std, np.float32)[:, None, None]).astype(np.float32)
        windows = np.repeat(frames[:, None], spec.num_frames, axis=1)
        session = ort.InferenceSession(str(member.bundle.onnx_path), providers=["CPUExecutionProvider"])
        logits = session.run(["logits"], {"faces": windows})[0]
        probs.append(softmax(logits.astype(np.float64) / member.temperature)[:, member_order(spec, labels)])
    return np.mean(probs, axis=0)


def check_parity(bundle: ModelBundle, reference: np.ndarray, crops: np.ndarray, tolerance: float = TOLERANCE
                 ) -> dict[str, float]:
    """model.onnx, and frame_encoder + window_head, on still windows of each crop, against the reference."""
    spec = bundle.spec
    cpu = ["CPUExecutionProvider"]
    windows = np.repeat(crops[:, None], spec.num_frames, axis=1)
    whole = ort.InferenceSession(str(bundle.onnx_path), providers=cpu)
    got = whole.run(["logits"], {"faces": normalise(windows, spec.mean, spec.std)})[0]
    enc = ort.InferenceSession(str(bundle.directory / spec.frame_cache.encoder), providers=cpu)
    head = ort.InferenceSession(str(bundle.directory / spec.frame_cache.head), providers=cpu)
    features = enc.run(["features"], {"frames": normalise(crops[None], spec.mean, spec.std)[0]})[0]
    split = head.run(["logits"], {"features": np.repeat(features[:, None], spec.num_frames, axis=1)})[0]
    diffs = {"real": float(np.abs(softmax(got) - reference).max()),
             "real_frame_cache": float(np.abs(softmax(split) - reference).max())}
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= tolerance:
        raise ParityError(f"the ensemble differs from its members' own graphs by {diffs[worst]:.3g} (> {tolerance:g}) "
                          f"on {len(crops)} real face crops ({worst})")
    return {name: float(f"{v:.3g}") for name, v in diffs.items()}


def member_crops(crops: np.ndarray, spec: BundleSpec, region: tuple[int, int]) -> np.ndarray:
    """The member's crops [N, s, s, c] uint8 as the service makes them, cut from ensemble crops [N, S, S, 3] RGB:
    its region, shrunk with cv2.INTER_AREA, grey by cv2 where it is grey."""
    import cv2

    offset, side = region
    out = []
    for crop in crops:
        part = crop[offset:offset + side, offset:offset + side]
        if side != spec.image_size:
            part = cv2.resize(part, (spec.image_size, spec.image_size), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(part, cv2.COLOR_RGB2GRAY)[..., None] if spec.channels == 1 else part)
    return np.stack(out)


def members_mean(members: list[Member], labels: list[str], crops_of) -> np.ndarray:
    """The mean of the members' probabilities as the service gives them (OnnxEngine at each member's temperature)
    on still windows of crops_of(member) [N, s, s, c] uint8, in the ensemble's label order."""
    from service.inference.engine import OnnxEngine

    probs = []
    for member in members:
        spec = member.bundle.spec.model_copy(update={"calibration": member.calibration})
        crops = crops_of(member)
        engine = OnnxEngine(ModelBundle(member.bundle.directory, spec))
        probs.append(engine.predict(np.repeat(crops[:, None], spec.num_frames, axis=1))[:, member_order(spec, labels)])
    return np.mean(probs, axis=0)


def service_parity(bundle: ModelBundle, members: list[Member], geometry: Geometry, crops: np.ndarray,
                   tolerance: float = SERVICE_TOLERANCE) -> float:
    """The ensemble as the service runs it (at T=1) against the members as the service runs each on its own crop of
    the same ensemble crops: the largest probability difference."""
    from service.inference.engine import OnnxEngine

    spec = bundle.spec
    ours = OnnxEngine(bundle).predict(np.repeat(crops[:, None], spec.num_frames, axis=1))
    regions = dict(zip((id(m) for m in members), geometry.regions))
    mean = members_mean(members, spec.labels, lambda m: member_crops(crops, m.bundle.spec, regions[id(m)]))
    diff = float(np.abs(ours - mean).max())
    if not diff <= tolerance:
        raise ParityError(f"the ensemble differs from its members run by the service on the same crops by {diff:.3g} "
                          f"(> {tolerance:g}) on {len(crops)} real face crops")
    return float(f"{diff:.3g}")


def photo_faces() -> list[tuple[np.ndarray, tuple]]:
    """(BGR image, face box) of the real photographs the service's footage is made from, mirrored, darker and
    brighter."""
    import cv2

    from service.footage.people import real_photos

    faces = []
    for photo in real_photos():
        x, y, w, h = photo.face
        faces += [(photo.image, photo.face), (cv2.flip(photo.image, 1), (photo.image.shape[1] - x - w, y, w, h))]
        faces += [(cv2.convertScaleAbs(photo.image, alpha=a), photo.face) for a in (0.6, 1.3)]
    return faces


def frame_agreement(bundle: ModelBundle, members: list[Member], faces: list[tuple[np.ndarray, tuple]]
                    ) -> Agreement:
    """The ensemble against its members each cropping the frame itself (as separate bundles would): the crops then
    differ by resampling and by where each rounds the box to whole pixels, which these small networks feel (a face
    moved by one pixel changes their probabilities by up to about 0.17 on these photographs)."""
    from service.crops import declared_crop
    from service.inference.engine import OnnxEngine

    def crops(spec: BundleSpec) -> np.ndarray:
        policy = declared_crop(spec.crop, spec.image_size, spec.channels, 0.0)
        return np.stack([policy.crop(image, box) for image, box in faces])

    spec = bundle.spec
    ours = OnnxEngine(bundle).predict(np.repeat(crops(spec)[:, None], spec.num_frames, axis=1))
    mean = members_mean(members, spec.labels, lambda m: crops(m.bundle.spec))
    return Agreement(reference="the members run separately by the service, each cropping the frame itself (its "
                               "own margin and side) at its temperature, probabilities averaged; the ensemble at T=1",
                     windows=len(faces),
                     top1=float(np.mean(ours.argmax(1) == mean.argmax(1))),
                     max_prob_diff=float(f"{np.abs(ours - mean).max():.3g}"))


# ---- the bundle ----------------------------------------------------------------------------------------------

def _training(members: list[Member]) -> TrainingInfo:
    specs = [m.bundle.spec for m in members]
    return TrainingInfo(
        dataset="; ".join(f"{s.name}: {s.trained_on.dataset or 'unknown'}" for s in specs),
        source="ensemble (mean of calibrated probabilities) of " + "; ".join(
            f"{s.name} ({s.trained_on.source or 'source unknown'})" for s in specs),
        license="; ".join(f"{s.name}: {s.trained_on.licence}" for s in specs),
        research_only=any(s.trained_on.research_only for s in specs) or None)


def _member_record(member: Member, region: tuple[float, float]) -> dict:
    spec = member.bundle.spec
    return {"name": spec.name, "sha256": spec.sha256, "encoder_sha256": spec.frame_cache.encoder_sha256,
            "head_sha256": spec.frame_cache.head_sha256, "labels": spec.labels, "crop": spec.crop.model_dump(),
            "region": {"offset": round(region[0], 6), "side": round(region[1], 6)},
            "calibration": member.calibration.model_dump() if member.calibration else None,
            "trained_on": spec.trained_on.model_dump(exclude_none=True)}


def export_ensemble(out_dir: str | Path, member_dirs: list[Path] | None = None, name: str = NAME,
                    calibrate: Path | None = None, calibrate_whole_image: bool = False,
                    tolerance: float = TOLERANCE) -> ModelBundle:
    """Build, check and write the ensemble bundle (at out_dir only once every check passed)."""
    from export.real_inputs import real_photo_crops

    out_dir = Path(out_dir)
    members = load_members([Path(d) for d in (member_dirs or DEFAULT_MEMBERS)], calibrate, calibrate_whole_image)
    specs = [m.bundle.spec for m in members]
    if len({s.num_frames for s in specs}) != 1:
        raise ValueError(f"members take windows of different lengths ({[s.num_frames for s in specs]})")
    labels = list(specs[0].labels)
    for s in specs[1:]:
        member_order(s, labels)
    geometry = crop_geometry([s.crop for s in specs])
    opset = max(s.opset for s in specs)
    num_frames = specs[0].num_frames
    crops = np.stack(real_photo_crops(geometry.size, 3))
    reference = reference_probabilities(members, geometry, labels, crops)
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        staging = Path(tmp) / "bundle"
        staging.mkdir()
        width = write_graphs(members, geometry, labels, num_frames, opset, staging)
        crop = CropSpec(margin=geometry.margin, align=specs[0].crop.align, size=geometry.size, colour="rgb")
        spec = BundleSpec(
            name=name, method="baseline", labels=labels, num_frames=num_frames, image_size=geometry.size, channels=3,
            mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0],
            inputs=[TensorSpec(name="faces", shape=["batch", num_frames, 3, geometry.size, geometry.size])],
            output=TensorSpec(name="logits", shape=["batch", len(labels)]), opset=opset,
            backbone="ensemble: " + " + ".join(s.backbone or s.name for s in specs), trained_on=_training(members),
            sha256=file_sha256(staging / MODEL_ONNX), crop=crop,
            frame_cache=FrameCacheSpec(feature_dim=width, encoder_sha256=file_sha256(staging / "frame_encoder.onnx"),
                                       head_sha256=file_sha256(staging / "window_head.onnx")),
            members=[_member_record(m, r) for m, r in zip(members, geometry.regions)])
        bundle = ModelBundle(staging, spec)
        bundle.write_spec()
        parity = check_parity(ModelBundle.load(staging), reference, crops, tolerance)
        parity["service_same_crops"] = service_parity(ModelBundle.load(staging), members, geometry, crops)
        agreement = frame_agreement(ModelBundle.load(staging), members, photo_faces())
        default = calibrate is None and [Path(d).resolve() for d in (member_dirs or DEFAULT_MEMBERS)] == [
            d.resolve() for d in DEFAULT_MEMBERS]
        bundle = ModelBundle(staging, spec.model_copy(update={
            "parity": parity, "agreement": agreement, "calibration": RECORDED_CALIBRATION if default else None}))
        bundle.write_spec()
        publish_bundle(bundle, out_dir, calibrate, calibrate_whole_image)
    log.info("ensemble %s of %s written to %s (parity %s; agreement with the members %s)", name,
             ", ".join(s.name for s in specs), out_dir, parity, agreement)
    return ModelBundle.load(out_dir)
