"""Exporting CrossPoint checkpoints to ONNX, TorchScript and a Triton model repository."""
