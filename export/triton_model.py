"""A Triton Python-backend model that runs the ONNX graph beside it (`model.onnx`) with ONNX Runtime on the CPU.

`python -m export triton --backend python` copies this file into each model's version directory as `model.py`:
for a Triton without the onnxruntime backend (the tritonserver of the nvidia-pytriton wheel, which the tests use
on a CPU machine). The graph, the protocol and the server are those of a production Triton; only the backend
differs (there: onnxruntime, on a GPU). The requests of one execution, merged by the dynamic batcher, run as one
batch. The optional parameter `intra_op_thread_count` (the onnxruntime backend's name) sets ONNX Runtime's threads.

Runs inside Triton's Python stub, with its interpreter: it imports nothing of this project.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = config.get("parameters", {}).get("intra_op_thread_count", {}).get("string_value", "0")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        feeds = {name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests]
                 for name in self.inputs}
        sizes = [len(a) for a in feeds[self.inputs[0]]]
        try:
            results = self.session.run(self.outputs, {name: np.concatenate(arrays) for name, arrays in feeds.items()})
        except Exception as exc:  # onnxruntime's errors are untyped; each request gets the message
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(out[start:start + size]))
                       for name, out in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += size
        return responses
