"""A real tritonserver (the local harness: python shims for the onnxruntime and pytorch backends)
loads the exported repository as written and answers with the contract's tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crosspoint.triton.testing import running_triton
from export import validate_repository


@pytest.mark.triton
@pytest.mark.parametrize("backend", ["onnxruntime", "pytorch"])
def test_triton_serves_the_exported_repository(repository_copy: Path, backend: str) -> None:
    import tritonclient.grpc as grpc

    if backend == "pytorch":  # the documented switch to model.pt: two lines of config.pbtxt
        for model in ("embed", "classify", "segment"):
            path = repository_copy / model / "config.pbtxt"
            text = path.read_text().replace('backend: "onnxruntime"', 'backend: "pytorch"')
            path.write_text(text.replace('"model.onnx"', '"model.pt"'))
        assert validate_repository(repository_copy, run_models=False) == []

    points = np.random.default_rng(0).standard_normal((2, 300, 3)).astype(np.float32)
    category = np.eye(16, dtype=np.float32)[[0, 4]]

    def tensor(name: str, array: np.ndarray) -> grpc.InferInput:
        value = grpc.InferInput(name, list(array.shape), "FP32")
        value.set_data_from_numpy(array)
        return value

    with running_triton(repository_copy) as server:
        client = grpc.InferenceServerClient(server.urls.grpc)
        for model in ("embed", "classify", "segment"):
            assert client.is_model_ready(model), server.log_tail()
            assert client.get_model_config(model).config.backend == backend
        embed = client.infer("embed", [tensor("points", points)])
        assert embed.as_numpy("embedding").shape == (2, 2048)
        assert embed.as_numpy("projection").shape == (2, 256)
        requested = [grpc.InferRequestedOutput("logits", class_count=2)]
        top = client.infer("classify", [tensor("points", points)], outputs=requested).as_numpy("logits")
        assert top.shape == (2, 2) and top[0, 0].decode().count(":") == 2  # "score:index:label" (labels.txt)
        parts = client.infer("segment", [tensor("points", points), tensor("category", category)])
        assert parts.as_numpy("part_logits").shape == (2, 300, 50)
