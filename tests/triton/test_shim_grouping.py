"""The shims' request grouping and tensor binding, without a server."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from crosspoint.triton.backends.pytorch.model import _binding_order
from crosspoint.triton.backends.shim import group_compatible, run_grouped


def _request(batch: int, points: int, fill: float) -> dict[str, np.ndarray]:
    return {"points": np.full((batch, points, 3), fill, dtype=np.float32)}


def _sum_model(calls: list[int]) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        calls.append(len(inputs["points"]))
        return {"total": inputs["points"].sum(axis=(1, 2))}

    return run


def test_compatible_requests_run_once_and_split_back_in_order() -> None:
    requests = [_request(1, 4, 1.0), _request(3, 4, 2.0), _request(2, 4, 3.0)]
    calls: list[int] = []
    results = run_grouped(requests, _sum_model(calls), batched=True)
    assert calls == [6]
    assert [r["total"].tolist() for r in results] == [[12.0], [24.0] * 3, [36.0] * 2]  # type: ignore[index]


def test_other_point_counts_form_their_own_group() -> None:
    requests = [_request(1, 4, 1.0), _request(1, 5, 1.0), _request(2, 4, 1.0)]
    assert group_compatible(requests, batched=True) == [[0, 2], [1]]
    calls: list[int] = []
    results = run_grouped(requests, _sum_model(calls), batched=True)
    assert sorted(calls) == [1, 3]
    assert [r["total"].tolist() for r in results] == [[12.0], [15.0], [12.0, 12.0]]  # type: ignore[index]


def test_without_batch_axis_each_request_runs_alone() -> None:
    assert group_compatible([_request(1, 4, 0), _request(1, 4, 0)], batched=False) == [[0], [1]]


def test_an_error_fails_only_its_group() -> None:
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if inputs["points"].shape[1] == 5:
            raise ValueError("bad shape")
        return {"total": inputs["points"].sum(axis=(1, 2))}

    results = run_grouped([_request(1, 4, 1.0), _request(1, 5, 1.0)], run, batched=True)
    assert isinstance(results[1], ValueError)
    assert not isinstance(results[0], Exception)


def test_an_output_without_the_batch_axis_is_an_error_not_a_wrong_split() -> None:
    results = run_grouped(
        [_request(1, 4, 1.0), _request(1, 4, 1.0)], lambda _: {"x": np.zeros(3)}, batched=True
    )
    assert all(isinstance(r, ValueError) for r in results)


@pytest.mark.parametrize(
    ("names", "arguments", "expected"),
    [
        (["category", "points"], ["points", "category"], ["points", "category"]),  # forward's names
        (["B__1", "A__0"], ["x", "y"], ["A__0", "B__1"]),  # <name>__<index>
        (["embedding", "projection"], [], ["embedding", "projection"]),  # config order
    ],
)
def test_torchscript_binding_follows_the_pytorch_backend(
    names: list[str], arguments: list[str], expected: list[str]
) -> None:
    assert _binding_order(names, arguments) == expected
