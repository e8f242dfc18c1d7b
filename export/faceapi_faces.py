"""face-api.js's 68-point landmark net and face recognition net (npm `@vladmandic/face-api` 1.7.15, MIT) as the ONNX
graphs the service embeds in service/assets/faces (service/faces/nets.py runs them), converted at build time:

    python -m export faces --out service/assets/faces        (or: make faces)

TensorFlow.js weights (export/tfjs_weights.py, files pinned by sha256 in export/faceapi_package.py) -> our PyTorch
build of the architectures (models/faceapi_faces.py) -> ONNX (opset 17, batch axis free, onnx.checker), checked
twice before anything is written:

- ONNX Runtime against PyTorch, on random pixels and on real face inputs;
- the service's whole path (service/faces/nets.py: its crops, its TensorFlow.js-style resize, the ONNX graph)
  against face-api's own code running its own weights in Node with TensorFlow.js (export/tfjs_reference.js), on
  the same face squares at their own size (face-api resizes them itself): real faces of installed packages'
  photographs (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper; the npm package's demo/ group
  photos, faces found by the service's detector). Landmarks are compared as the net gives them (relative to the
  square), descriptors as they are.

The largest difference of each must stay within TFJS_TOLERANCE; the figures go into PROVENANCE.json with the
sha256 of every source and written file.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from export.faceapi_package import (FACEAPI_LICENSE, FACEAPI_PACKAGE, FACEAPI_VERSION, PINNED_SHA256, TFJS_VERSION,
                                    FaceApiPackage, find_faceapi)
from export.onnx_export import ParityError
from export.tfjs_reference import run_tfjs
from export.tfjs_weights import read_manifest
from models.faceapi_faces import faceapi_landmark_net, faceapi_recognition_net
from service.faces.nets import (LANDMARK_FILE, LANDMARK_INPUT_SIZE, PROVENANCE_FILE, RECOGNITION_FILE,
                                RECOGNITION_INPUT_SIZE, DescriptorNet, LandmarkNet, aligned_square, cut_square,
                                landmark_square, resize_bilinear_tf)

log = logging.getLogger(__name__)

OPSET = 17
# Both sides compute in float32 from the same dequantised weights; what is left is summation order (seen: 2.4e-7 on
# relative landmark coordinates, 3.4e-7 on descriptor values, which reach about 0.5).
TORCH_TOLERANCE = 1e-5
TFJS_TOLERANCE = 1e-4
OUTPUTS = {"landmark68": "136 (x0, y0, x1, y1, ... of the 68 points, relative to the square)",
           "recognition": "128 (the face descriptor)"}
DEMO_PHOTOS = tuple(f"sample{i}.jpg" for i in range(1, 7))  # the npm package's demo/ photographs


@dataclass(frozen=True)
class FaceNet:
    key: str  # our name, in PROVENANCE.json
    model: str  # face-api's weights file stem
    tfjs_net: str  # its property of faceapi.nets
    file: str
    size: int
    output: str
    build: Callable[[dict[str, np.ndarray]], torch.nn.Module]  # TensorFlow.js weights -> the net on pixels


NETS = (
    FaceNet("landmark68", "face_landmark_68_model", "faceLandmark68Net", LANDMARK_FILE, LANDMARK_INPUT_SIZE,
            "landmarks", faceapi_landmark_net),
    FaceNet("recognition", "face_recognition_model", "faceRecognitionNet", RECOGNITION_FILE, RECOGNITION_INPUT_SIZE,
            "descriptors", faceapi_recognition_net),
)


@dataclass(frozen=True)
class RealFace:
    name: str
    image: np.ndarray  # BGR
    box: tuple[float, float, float, float]  # x, y, w, h


def demo_photo_faces(package: FaceApiPackage, photos: tuple[str, ...] = DEMO_PHOTOS) -> list[RealFace]:
    """Every face the service's default detector finds in the npm package's demo/ group photographs."""
    import cv2

    from service.config import Settings
    from service.detect import create_detector

    detector = create_detector(Settings(_env_file=None))
    faces = []
    for photo in photos:
        image = cv2.imread(str(package.package_dir / "demo" / photo))
        if image is None:
            raise FileNotFoundError(f"{package.package_dir / 'demo' / photo} is missing: reinstall it with "
                                    "`make faceapi-npm`")
        for i, detection in enumerate(sorted(detector.detect(image), key=lambda d: d.box[0])):
            faces.append(RealFace(f"{photo}#{i}", image, tuple(float(v) for v in detection.box)))
    return faces


def real_faces(package: FaceApiPackage, demo_photos: tuple[str, ...] = DEMO_PHOTOS) -> list[RealFace]:
    """The photographs of service.footage.people (their known face boxes) and the faces of the npm demo photos."""
    from service.footage.people import real_photos

    return [RealFace(p.name, p.image, tuple(float(v) for v in p.face)) for p in real_photos()] + \
        demo_photo_faces(package, demo_photos)


def face_squares(faces: list[RealFace], landmarks: LandmarkNet) -> dict[str, list[np.ndarray]]:
    """What each net reads of each face, uint8 RGB squares at their own size: the landmark square around the box,
    and the aligned square from the landmarks the (converted) landmark net finds."""
    squares = {"landmark68": [], "recognition": []}
    for face in faces:
        squares["landmark68"].append(cut_square(face.image, *landmark_square(face.box)))
        points = landmarks.landmarks(face.image, face.box)
        squares["recognition"].append(cut_square(face.image, *aligned_square(points)))
    return squares


def compact_weights(model: onnx.ModelProto, min_size: int = 1024) -> int:
    """Store each float weight that takes at most 256 distinct values (all of face-api's: they were quantised to
    uint8) as uint8 indices into a table of its exact float32 values, looked up by Cast + Gather, which ONNX Runtime
    folds back into the plain weight when it loads the graph: the same values, a quarter of the bytes (recognition:
    6 MB, not 22). Returns how many bytes it saved."""
    from onnx import helper, numpy_helper

    graph, saved = model.graph, 0
    for initializer in list(graph.initializer):
        values = numpy_helper.to_array(initializer)
        if values.dtype != np.float32 or values.size < min_size:
            continue
        table, indices = np.unique(values, return_inverse=True)
        if len(table) > 256:
            continue
        name = initializer.name
        graph.initializer.remove(initializer)
        graph.initializer.extend([numpy_helper.from_array(table.astype(np.float32), f"{name}__table"),
                                  numpy_helper.from_array(indices.reshape(values.shape).astype(np.uint8),
                                                          f"{name}__indices")])
        # nodes go first: every consumer of the weight comes later in the (topologically sorted) graph
        graph.node.insert(0, helper.make_node("Gather", [f"{name}__table", f"{name}__indices_int"], [name]))
        graph.node.insert(0, helper.make_node("Cast", [f"{name}__indices"], [f"{name}__indices_int"],
                                              to=onnx.TensorProto.INT32))
        saved += values.nbytes - values.size - table.nbytes
    return saved


def export_graph(net: FaceNet, module: torch.nn.Module, path: Path) -> None:
    example = torch.rand(2, net.size, net.size, 3) * 255
    torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=["pixels"],
                      output_names=[net.output], dynamic_axes={"pixels": {0: "faces"}, net.output: {0: "faces"}})
    model = onnx.load(str(path))
    saved = compact_weights(model)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    log.info("%s: %d bytes (%d saved by storing weights as uint8 indices)", net.file, path.stat().st_size, saved)


def torch_parity(net: FaceNet, module: torch.nn.Module, path: Path, real: np.ndarray) -> dict[str, float]:
    """max |ONNX Runtime - PyTorch| on random pixels and on the real inputs ([N, S, S, 3] float pixels)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = np.random.default_rng(0)
    diffs = {}
    for name, pixels in (("random", generator.uniform(0, 255, (2, net.size, net.size, 3)).astype(np.float32)),
                         ("real", real)):
        (ours,) = session.run([net.output], {"pixels": pixels})
        with torch.no_grad():
            reference = module(torch.from_numpy(pixels)).numpy()
        diffs[name] = float(np.abs(ours - reference).max())
    if not max(diffs.values()) <= TORCH_TOLERANCE:
        raise ParityError(f"{net.file}: ONNX Runtime and PyTorch differ by {max(diffs.values()):.3g} "
                          f"(> {TORCH_TOLERANCE:g})")
    return diffs


def tfjs_parity(package: FaceApiPackage, net: FaceNet, squares: list[np.ndarray], runner,
                tolerance: float = TFJS_TOLERANCE) -> dict:
    """The service's path (resize + ONNX graph: `runner`, a service.faces.nets net's `_PixelNet.run`) against
    face-api's net in TensorFlow.js, on the same squares at their own sizes."""
    reference = run_tfjs(package, net.tfjs_net, squares)
    ours = runner(squares)
    diff = float(np.abs(ours - reference["outputs"]).max())
    log.info("%s against TensorFlow.js %s (%s backend) on %d real faces: max abs diff %.3g (largest value %.3g)",
             net.file, reference["tfjs"], reference["backend"], len(squares), diff,
             float(np.abs(reference["outputs"]).max()))
    if not diff <= tolerance:
        raise ParityError(f"{net.file} differs from face-api's {net.tfjs_net} in TensorFlow.js by {diff:.3g} "
                          f"(> {tolerance:g}) on {len(squares)} real faces")
    return {"faces": len(squares), "max_abs_diff": float(f"{diff:.3g}"), "tfjs": reference["tfjs"],
            "backend": reference["backend"], "sides_px": [int(min(s.shape[0] for s in squares)),
                                                          int(max(s.shape[0] for s in squares))]}


def export_faces(out_dir: str | Path, npm_dir: str | Path | None = None,
                 demo_photos: tuple[str, ...] = DEMO_PHOTOS) -> dict:
    """Convert both nets into out_dir (landmark68.onnx, recognition.onnx, PROVENANCE.json) once every check passed;
    returns the provenance. `demo_photos`: which of the npm demo photographs join the real faces."""
    from service.bundle import file_sha256

    package = find_faceapi(npm_dir)
    out_dir = Path(out_dir)
    faces = real_faces(package, demo_photos)
    provenance = {
        "source": f"npm {FACEAPI_PACKAGE}@{FACEAPI_VERSION} model/ (face-api.js by Vincent Mühler, maintained by "
                  "Vladimir Mandic)", "license": FACEAPI_LICENSE,
        "converter": f"export/faceapi_faces.py (models/faceapi_faces.py in PyTorch -> ONNX opset {OPSET})",
        "reference": f"face-api's own code in Node, @tensorflow/tfjs@{TFJS_VERSION} CPU backend",
        "real_faces": [face.name for face in faces], "nets": {}}
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        staging = Path(tmp)
        modules = {}
        for net in NETS:
            modules[net.key] = net.build(read_manifest(package.manifest(net.model)))
            export_graph(net, modules[net.key], staging / net.file)
        landmark_net = LandmarkNet(staging)
        runners = {"landmark68": landmark_net.net.run, "recognition": DescriptorNet(staging).net.run}
        squares = face_squares(faces, landmark_net)
        for net in NETS:
            real = np.stack([resize_bilinear_tf(square, net.size) for square in squares[net.key]])
            sources = [f"{net.model}-weights_manifest.json", f"{net.model}.bin"]
            provenance["nets"][net.key] = {
                "file": net.file, "sha256": file_sha256(staging / net.file),
                "from": {f"model/{name}": PINNED_SHA256[name] for name in sources},
                "input": f"pixels: faces x {net.size} x {net.size} x 3, RGB 0..255 (normalised inside: "
                         "(pixel - mean RGB) / 255)",
                "output": f"{net.output}: faces x {OUTPUTS[net.key]}",
                "parity": {"onnx_vs_torch": {k: float(f"{v:.3g}") for k, v in
                                             torch_parity(net, modules[net.key], staging / net.file, real).items()},
                           "service_vs_tfjs": tfjs_parity(package, net, squares[net.key], runners[net.key])}}
        (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in (LANDMARK_FILE, RECOGNITION_FILE, PROVENANCE_FILE):
            shutil.move(str(staging / name), str(out_dir / name))
    log.info("face nets written to %s", out_dir)
    return provenance
