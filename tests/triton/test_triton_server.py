"""The real tritonserver from nvidia-pytriton, with the shim backends, on a tiny repository."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from crosspoint.triton import server as server_module
from crosspoint.triton.server import TritonServer, TritonStartError, build_backend_dir, find_distribution
from crosspoint.triton.testing import require_tritonserver, running_triton

from .conftest import MODELS, build_repository, reference, sample_inputs

pytestmark = pytest.mark.triton
ATOL = 1e-5


def _kind(model: str) -> str:
    return MODELS[model][3]


def _grpc_infer(client: grpcclient.InferenceServerClient, model: str, inputs: dict[str, np.ndarray]) -> dict:
    tensors = []
    for name, array in inputs.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(model, tensors)
    return {out["name"]: result.as_numpy(out["name"]) for out in result.get_response(as_json=True)["outputs"]}


def _assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=0, err_msg=name)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (tritonserver and its stubs carry the workdir path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_configs_are_full_and_valid(tiny_repository: Path) -> None:
    for name in MODELS:
        config = text_format.Parse(
            (tiny_repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        assert config.name == name and config.max_batch_size == 16 and config.input and config.output


@pytest.mark.parametrize("model", list(MODELS))
def test_grpc_answers_match_pytorch_and_onnxruntime(
    triton: TritonServer, tiny_repository: Path, model: str
) -> None:
    inputs = sample_inputs(_kind(model), batch=3, points=37, seed=1)
    with grpcclient.InferenceServerClient(triton.urls.grpc) as client:
        got = _grpc_infer(client, model, inputs)
    _assert_close(got, reference(_kind(model), inputs))
    if MODELS[model][2] == "model.onnx":
        session = ort.InferenceSession(
            str(tiny_repository / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        _assert_close(got, dict(zip(names, session.run(names, inputs), strict=True)))


@pytest.mark.parametrize("model", ["embed", "segment_pt"])
def test_http_answers_match_pytorch(triton: TritonServer, model: str) -> None:
    inputs = sample_inputs(_kind(model), batch=2, points=20, seed=2)
    client = httpclient.InferenceServerClient(triton.urls.http)
    try:
        tensors = []
        for name, array in inputs.items():
            tensor = httpclient.InferInput(name, list(array.shape), "FP32")
            tensor.set_data_from_numpy(array, binary_data=True)
            tensors.append(tensor)
        result = client.infer(model, tensors)
        want = reference(_kind(model), inputs)
        _assert_close({name: result.as_numpy(name) for name in want}, want)
    finally:
        client.close()


@pytest.mark.parametrize("model", ["embed", "embed_pt", "segment"])
def test_concurrent_requests_are_batched_and_split_back_correctly(triton: TritonServer, model: str) -> None:
    """Requests of 1-3 items each, sent at once: fewer executions than requests, every answer its own."""
    requests = [sample_inputs(_kind(model), batch=1 + i % 3, points=16, seed=100 + i) for i in range(12)]
    answers: queue.Queue[tuple[int, object, object]] = queue.Queue()
    with grpcclient.InferenceServerClient(triton.urls.grpc) as client:
        before = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        for index, inputs in enumerate(requests):
            tensors = []
            for name, array in inputs.items():
                tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
                tensor.set_data_from_numpy(array)
                tensors.append(tensor)
            client.async_infer(model, tensors, lambda result, error, i=index: answers.put((i, result, error)))
        received = [answers.get(timeout=30) for _ in requests]
        after = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    for index, result, error in received:
        assert error is None, error
        want = reference(_kind(model), requests[index])
        _assert_close({name: result.as_numpy(name) for name in want}, want)  # type: ignore[attr-defined]
    executions = int(after.get("execution_count", 0)) - int(before.get("execution_count", 0))
    items = int(after.get("inference_count", 0)) - int(before.get("inference_count", 0))
    assert items == sum(len(r["points"]) for r in requests)
    assert 1 <= executions < len(requests), (
        f"{executions} executions for {len(requests)} requests: no batching"
    )


def test_mixed_point_counts_at_once_each_get_their_own_answer(triton: TritonServer) -> None:
    requests = [sample_inputs("embed", batch=2, points=10 + 5 * (i % 3), seed=200 + i) for i in range(9)]
    answers: queue.Queue[tuple[int, object, object]] = queue.Queue()
    with grpcclient.InferenceServerClient(triton.urls.grpc) as client:
        for index, inputs in enumerate(requests):
            tensor = grpcclient.InferInput("points", list(inputs["points"].shape), "FP32")
            tensor.set_data_from_numpy(inputs["points"])
            client.async_infer(
                "embed_pt", [tensor], lambda result, error, i=index: answers.put((i, result, error))
            )
        received = [answers.get(timeout=30) for _ in requests]
    for index, result, error in received:
        assert error is None, error
        _assert_close({"embedding": result.as_numpy("embedding"), "projection": result.as_numpy("projection")},  # type: ignore[attr-defined]
                      reference("embed", requests[index]))  # fmt: skip


def test_a_failing_request_gets_an_error_and_the_model_keeps_serving(triton: TritonServer) -> None:
    # torch's max over zero points raises inside the model (ONNX Runtime answers -inf instead);
    # the error path is ShimModel.execute, shared by both shims.
    empty = np.zeros((1, 0, 3), dtype=np.float32)
    with grpcclient.InferenceServerClient(triton.urls.grpc) as client:
        with pytest.raises(InferenceServerException, match="RuntimeError"):
            _grpc_infer(client, "embed_pt", {"points": empty})
        inputs = sample_inputs("embed", batch=1, points=8, seed=3)
        _assert_close(_grpc_infer(client, "embed_pt", inputs), reference("embed", inputs))
    assert triton.is_running()


def test_stop_leaves_no_process_no_shared_memory_no_workdir(tmp_path: Path) -> None:
    require_tritonserver()
    repository = build_repository(tmp_path / "repo", ["embed", "embed_pt"])
    with running_triton(repository) as server:
        workdir = server.workdir
        group = server.pid
        assert len(_processes_mentioning(str(workdir))) >= 3  # the server and one stub per model instance
        shm_prefix = server._shm_prefix
        assert any(name.startswith(shm_prefix) for name in os.listdir("/dev/shm"))
    assert not server.is_running()
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    assert _processes_mentioning(str(workdir)) == []
    assert not any(name.startswith(shm_prefix) for name in os.listdir("/dev/shm"))
    assert not workdir.exists()
    assert "successfully loaded 'embed'" in server.log_text


def test_a_model_that_fails_to_load_raises_with_the_reason(tmp_path: Path) -> None:
    require_tritonserver()
    repository = build_repository(tmp_path / "repo", ["embed"])
    (repository / "embed" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(TritonStartError, match="embed") as raised:
        TritonServer.start(repository, timeout=60)
    assert "models failed to load" in str(raised.value)
    assert _processes_mentioning(str(repository)) == []


def test_a_hanging_model_load_times_out_and_is_killed(tmp_path: Path) -> None:
    """What a broken stub looks like: load never finishes. The timeout must kill the whole group."""
    require_tritonserver()
    backends = build_backend_dir(tmp_path / "backends", find_distribution())
    (backends / "hang").mkdir()
    (backends / "hang" / "model.py").write_text(
        "import time\n\nclass TritonPythonModel:\n    def initialize(self, args):\n        time.sleep(600)\n"
    )
    repository = tmp_path / "repo"
    (repository / "stuck" / "1").mkdir(parents=True)
    (repository / "stuck" / "config.pbtxt").write_text(
        'backend: "hang"\nmax_batch_size: 0\n'
        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )
    started = time.monotonic()
    with pytest.raises(TritonStartError, match="not ready after 3 s"):
        TritonServer.start(repository, backend_dir=backends, timeout=3)
    assert time.monotonic() - started < 30
    assert _processes_mentioning(str(repository)) == []
    assert _processes_mentioning(str(backends)) == []


def test_poll_mode_serves_a_new_version_when_it_appears(tmp_path: Path) -> None:
    """What the gateway's reload relies on: drop version 2 in, Triton switches to it by itself."""
    require_tritonserver()
    repository = build_repository(tmp_path / "repo", ["embed"])
    inputs = sample_inputs("embed", batch=1, points=8, seed=4)
    with (
        running_triton(repository, poll_seconds=1) as server,
        grpcclient.InferenceServerClient(server.urls.grpc) as client,
    ):
        _assert_close(_grpc_infer(client, "embed", inputs), reference("embed", inputs, seed=0))
        staging = tmp_path / "staging"
        build_repository(staging, ["embed"], seed=7)
        # Written elsewhere and renamed in: a poll must never see a half-written version.
        shutil.move(staging / "embed" / "1", repository / "embed" / "2")
        deadline = time.monotonic() + 30
        while not client.is_model_ready("embed", "2"):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.2)
        _assert_close(_grpc_infer(client, "embed", inputs), reference("embed", inputs, seed=7))


def test_a_taken_port_fails_when_asked_for_and_is_retried_when_picked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tritonserver()
    repository = build_repository(tmp_path / "repo", ["embed"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(TritonStartError, match="already in use"):
            TritonServer.start(repository, grpc_port=busy, timeout=30)

        real_free_ports = server_module.free_ports
        picks: list[list[int]] = []

        def first_pick_collides(count: int) -> list[int]:
            ports = real_free_ports(count)
            picks.append([busy, *ports[1:]] if not picks else ports)
            return picks[-1]

        monkeypatch.setattr(server_module, "free_ports", first_pick_collides)
        with running_triton(repository) as server:
            assert len(picks) == 2 and server.urls.http == f"127.0.0.1:{picks[1][0]}"
