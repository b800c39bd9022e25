"""The fused EdgeConv (models/_edgeconv.py) against the reference edge form (`edgeconv="edge"`).

In float64 the two are the same function, so forward values, every gradient and the BatchNorm
running buffers must agree to 1e-9 (relative to the largest value). In float32 they differ by
rounding only: 1e-5 relative. BN scales are drawn with both signs, so the max over s*P is tested
for negative s too.
"""

from __future__ import annotations

import pytest
import torch

from crosspoint.models import create_model
from crosspoint.models import dgcnn as dgcnn_module
from crosspoint.models.dgcnn import EdgeConv

# (dtype, relative tolerance): the same function in float64, rounding only in float32.
PRECISIONS = [(torch.float64, 1e-9), (torch.float32, 1e-5)]


def _close(got: torch.Tensor, want: torch.Tensor, rel: float, what: str) -> None:
    scale = want.abs().max().clamp_min(1.0)
    err = (got.double() - want.double()).abs().max() / scale
    assert err <= rel, f"{what}: max |diff| / max(1, |ref|) = {err:.2e} > {rel:.0e}"


def _pair(in_dim: int, out_dim: int, k: int, dtype: torch.dtype) -> tuple[EdgeConv, EdgeConv]:
    torch.manual_seed(0)
    fused, edge = EdgeConv(in_dim, out_dim, k, form="point"), EdgeConv(in_dim, out_dim, k, form="edge")
    with torch.no_grad():
        fused.bn.weight.uniform_(-1.5, 1.5)  # negative scales flip which neighbour is the max
        fused.bn.bias.uniform_(-0.5, 0.5)
        fused.bn.running_mean.uniform_(-1, 1)
        fused.bn.running_var.uniform_(0.5, 2)
    edge.load_state_dict(fused.state_dict())
    return fused.to(dtype), edge.to(dtype)


@pytest.mark.parametrize(("dtype", "rel"), PRECISIONS)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_train_mode_layer_matches_edge_form(dtype: torch.dtype, rel: float, momentum: float | None) -> None:
    fused, edge = _pair(16, 32, k=10, dtype=dtype)
    fused.bn.momentum = edge.bn.momentum = momentum
    x = torch.randn(3, 16, 128, dtype=dtype)
    xf, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    for step in range(2):  # twice: the running buffers and num_batches_tracked must follow too
        out_f, out_e = fused(xf), edge(xe)
        _close(out_f, out_e, rel, f"forward, step {step}")
    grad = torch.randn_like(out_e)
    out_f.backward(grad)
    out_e.backward(grad)
    assert xf.grad is not None and xe.grad is not None
    _close(xf.grad, xe.grad, rel, "d/dx")
    for (name, p_f), (_, p_e) in zip(fused.named_parameters(), edge.named_parameters(), strict=True):
        assert p_f.grad is not None and p_e.grad is not None
        _close(p_f.grad, p_e.grad, rel, f"d/d{name}")
    for (name, b_f), (_, b_e) in zip(fused.named_buffers(), edge.named_buffers(), strict=True):
        _close(b_f, b_e, rel, name)


@pytest.mark.parametrize(("dtype", "rel"), PRECISIONS)
def test_eval_mode_layer_matches_edge_form(dtype: torch.dtype, rel: float) -> None:
    fused, edge = _pair(16, 32, k=10, dtype=dtype)
    fused.eval()
    edge.eval()
    x = torch.randn(2, 16, 100, dtype=dtype, requires_grad=True)
    out_f = fused(x)
    (grad_f,) = torch.autograd.grad(out_f.sum(), x)
    out_e = edge(x)
    (grad_e,) = torch.autograd.grad(out_e.sum(), x)
    _close(out_f, out_e, rel, "forward")
    _close(grad_f, grad_e, rel, "d/dx")


def test_train_step_of_whole_dgcnn_matches_edge_form() -> None:
    """forward_features + project + a loss + backward, train mode, float64: every parameter's gradient."""
    torch.manual_seed(1)
    fused = create_model("dgcnn", k=8, edgeconv="point").double().train()
    edge = create_model("dgcnn", k=8, edgeconv="edge").double().train()
    edge.load_state_dict(fused.state_dict())
    points = torch.randn(4, 96, 3, dtype=torch.float64)
    losses = []
    for model in (fused, edge):
        z = model.project(model.forward_features(points))
        loss = (z.tanh() * torch.linspace(-1, 1, z.shape[1], dtype=z.dtype)).sum()
        loss.backward()
        losses.append(loss)
    _close(losses[0], losses[1], 1e-9, "loss")
    for (name, p_f), (_, p_e) in zip(fused.named_parameters(), edge.named_parameters(), strict=True):
        if p_e.grad is None:  # the class head is not part of this loss
            continue
        assert p_f.grad is not None, name
        _close(p_f.grad, p_e.grad, 1e-9, f"d/d{name}")
    for (name, b_f), (_, b_e) in zip(fused.named_buffers(), edge.named_buffers(), strict=True):
        _close(b_f, b_e, 1e-9, name)


def test_bf16_autocast_stays_near_fp32_and_returns_fp32() -> None:
    """Under autocast only the projections run in bf16; statistics, max and output stay fp32."""
    fused, edge = _pair(32, 64, k=10, dtype=torch.float32)
    x = torch.randn(2, 32, 128)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused(x)
    ref = edge(x)
    assert out.dtype == torch.float32
    _close(out, ref, 3e-2, "bf16 forward vs fp32 edge form")


def test_tracing_sees_the_plain_point_form() -> None:
    """Export traces the model: the sparse kernels must stay out of traced graphs."""
    seen = []
    model = create_model("dgcnn", k=5, edgeconv="point").eval()
    points = torch.randn(1, 40, 3)
    original = dgcnn_module.fused_applies

    def spy(x: torch.Tensor) -> bool:
        seen.append(original(x))
        return seen[-1]

    dgcnn_module.fused_applies = spy
    try:
        traced = torch.jit.trace_module(model, {"forward_features": points}, check_trace=False)
    finally:
        dgcnn_module.fused_applies = original
    assert seen and not any(seen)
    with torch.no_grad():
        _close(traced.forward_features(points), model.forward_features(points), 1e-5, "traced vs eager")


def test_partseg_train_step_matches_reference_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """dgcnn_partseg with `edge_block` (per-point first conv, edge rows) vs `graph_feature` blocks, float64."""
    import copy

    from crosspoint.models import partseg as partseg_module

    torch.manual_seed(0)
    model = create_model("dgcnn_partseg", k=10).double().train()
    points = torch.randn(3, 96, 3, dtype=torch.float64)
    category = torch.eye(16, dtype=torch.float64)[[1, 4, 9]]
    results = []
    for fused in (True, False):
        net = copy.deepcopy(model)
        monkeypatch.setattr(partseg_module, "fused_applies", lambda x, fused=fused: fused)
        torch.manual_seed(5)  # the same dropout masks in both
        logits = net(points, category)
        (logits.tanh() * torch.linspace(-1, 1, 50, dtype=logits.dtype)).sum().backward()
        results.append((logits, net))
    (got, fused_net), (want, reference_net) = results
    _close(got, want, 1e-9, "logits")
    for (name, p_f), (_, p_r) in zip(
        fused_net.named_parameters(), reference_net.named_parameters(), strict=True
    ):
        assert p_f.grad is not None and p_r.grad is not None, name
        _close(p_f.grad, p_r.grad, 1e-9, f"d/d{name}")
    for (name, b_f), (_, b_r) in zip(fused_net.named_buffers(), reference_net.named_buffers(), strict=True):
        _close(b_f, b_r, 1e-9, name)
