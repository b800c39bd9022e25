"""The exported form (each model's `export_form()`, crosspoint/models/inference.py) equals the
training form in eval mode, on real shapes.

Two checks each: in float64 (the algebra: per-point EdgeConv, BN folded, max before LeakyReLU, the
head split) the forms agree to the float32 rounding of the folded weights; in float32 (what we
serve) they pass the parity rules (export.parity.compare).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from crosspoint.models import create_model
from crosspoint.models.inference import PointEdgeConv, fold_head
from export.graphs import build_graph
from export.parity import ATOL, compare, parity_inputs
from tests.model_repositories import randomize_batchnorm


def _pair(model: torch.nn.Module, served: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    return build_graph(model, served, "reference"), build_graph(model, served, "export")


def _run(graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...], dtype: torch.dtype) -> torch.Tensor:
    with torch.no_grad():
        return copy.deepcopy(graph).to(dtype)(*(x.to(dtype) for x in inputs))[0]


@pytest.fixture(scope="module")
def modelnet_points() -> torch.Tensor:
    return torch.from_numpy(parity_inputs("embed", 1024, 2).arrays["points"])


def test_dgcnn_rewrite_matches_training_form_at_the_reference_size(modelnet_points: torch.Tensor) -> None:
    """Reference sizes (k=20, 1024 points, 2048-d), BN scales of both signs, MLP head."""
    torch.manual_seed(0)
    model: Any = create_model("dgcnn", k=20, num_classes=40, head="mlp")
    randomize_batchnorm(model)
    assert any((m.weight < 0).any() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    reference, rewrite = _pair(model.eval(), "classify")
    exact = _run(reference, (modelnet_points,), torch.float64) - _run(
        rewrite, (modelnet_points,), torch.float64
    )
    assert exact.abs().max() < 1e-6  # float32-rounded folded weights, nothing else
    with torch.no_grad():
        ref32 = [t.numpy() for t in reference(modelnet_points)]
        got32 = [t.numpy() for t in rewrite(modelnet_points)]
    report = compare(
        dict(zip(("logits", "embedding"), ref32, strict=True)),
        dict(zip(("logits", "embedding"), got32, strict=True)),
        {},
    )
    assert report["passed"] and report["top1_agreement"] == 1.0, report
    assert report["outputs"]["embedding"]["median_shape_diff"] < ATOL


def test_partseg_rewrite_matches_training_form_on_shapenetpart() -> None:
    torch.manual_seed(1)
    model: Any = create_model("dgcnn_partseg", k=20, emb_dims=256)
    randomize_batchnorm(model, seed=1)
    with torch.no_grad():
        model.transform_net.transform.weight.normal_(0, 0.01)
    arrays = parity_inputs("segment", 512, 3).arrays
    inputs = (torch.from_numpy(arrays["points"]), torch.from_numpy(arrays["category"]))
    reference, rewrite = _pair(model.eval(), "segment")
    assert (_run(reference, inputs, torch.float64) - _run(rewrite, inputs, torch.float64)).abs().max() < 1e-6
    ref32 = _run(reference, inputs, torch.float32)
    got = _run(rewrite, inputs, torch.float32)
    assert (ref32 - got).abs().max() < ATOL * max(1.0, ref32.abs().max().item())
    assert torch.equal(ref32.argmax(-1), got.argmax(-1))


def test_max_before_activation_holds_for_negative_bn_scales() -> None:
    """The sign case the derivation rules out: every BN scale negative."""
    torch.manual_seed(2)
    block: Any = create_model("dgcnn", k=8).edge2
    block.form = "edge"
    with torch.no_grad():
        block.bn.weight.uniform_(-2.0, -0.5)
        block.bn.running_mean.normal_(0, 0.2)
        block.bn.running_var.uniform_(0.3, 3.0)
    block.eval()
    x = torch.randn(2, 64, 100, dtype=torch.float64)
    expected = copy.deepcopy(block).double()(x)
    got = PointEdgeConv(block.conv, block.bn, 8).double()(x.transpose(2, 1)).transpose(2, 1)
    assert (expected - got).abs().max() < 1e-6


def test_knn_matches_the_model_knn_including_self() -> None:
    from crosspoint.models.dgcnn import knn as model_knn

    x = torch.randn(2, 200, 16)
    ours = model_knn(x, 12, points_last=True)  # the exported form's layout
    assert torch.equal(ours, model_knn(x.transpose(2, 1), 12))
    assert (ours[..., 0] == torch.arange(200)).all()  # self first


def test_fold_head_drops_dropout_and_folds_bn() -> None:
    torch.manual_seed(3)
    model: Any = create_model("dgcnn", k=8, num_classes=10, head="mlp")
    randomize_batchnorm(model)
    model.eval()
    folded = fold_head(model.head)
    assert not any(isinstance(m, torch.nn.BatchNorm1d | torch.nn.Dropout) for m in folded.modules())
    features = torch.randn(5, model.num_features, dtype=torch.float64)
    with torch.no_grad():
        # float32-rounded folded weights: the only difference
        assert (copy.deepcopy(model.head).double()(features) - folded.double()(features)).abs().max() < 1e-6


def test_pointnet_is_exported_as_trained() -> None:
    model: Any = create_model("pointnet", num_classes=5).eval()
    points = torch.randn(2, 64, 3)
    reference, exported = _pair(model, "classify")
    with torch.no_grad():
        assert torch.allclose(reference(points)[0], exported(points)[0], atol=1e-6)
