"""Trained PyTorch model -> model bundle (Contract 1): ONNX graph, bundle.json, parity check against PyTorch."""
