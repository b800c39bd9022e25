"""NT-Xent against hand computation and lightly's formulation; the CrossPoint sum; label smoothing."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from crosspoint.losses import crosspoint_loss, nt_xent, smoothed_cross_entropy


def _loop_nt_xent(out0: list[list[float]], out1: list[list[float]], t: float) -> float:
    """Plain-Python NT-Xent: 2B samples, positive = partner, every other sample a negative."""
    samples = [*out0, *out1]
    unit = [[x / math.sqrt(sum(v * v for v in s)) for x in s] for s in samples]
    b = len(out0)
    total = 0.0
    for i in range(2 * b):
        partner = i + b if i < b else i - b
        sims = {
            j: sum(a * c for a, c in zip(unit[i], unit[j], strict=True)) / t for j in range(2 * b) if j != i
        }
        total += -sims[partner] + math.log(sum(math.exp(s) for s in sims.values()))
    return total / (2 * b)


def test_identical_orthogonal_pairs_by_hand() -> None:
    # z = [e1, e2, e1, e2]; every row: positive cos 1, two negatives cos 0 -> log(1 + 2 e^-10).
    e = torch.eye(2)
    assert nt_xent(e, e, 0.1).item() == pytest.approx(math.log(1 + 2 * math.exp(-10)), abs=1e-6)


def test_small_case_matches_explicit_loops() -> None:
    out0 = [[3.0, 4.0], [1.0, 0.0]]
    out1 = [[0.0, 2.0], [1.0, 1.0]]
    # Row 0 by hand: unit vectors (.6,.8), (1,0) | (0,1), (.7071,.7071); row 0's partner is (0,1):
    # logits /0.1 = {1: 6, 2: 8, 3: 9.899}; loss_0 = -8 + log(e^6 + e^8 + e^9.899).
    row0 = -8 + math.log(math.exp(6) + math.exp(8) + math.exp(14 / math.sqrt(2)))
    expected = _loop_nt_xent(out0, out1, 0.1)
    assert row0 == pytest.approx(-8 + math.log(math.exp(6) + math.exp(8) + math.exp(9.899494936611665)))
    got = nt_xent(torch.tensor(out0), torch.tensor(out1), 0.1).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert expected > row0 / 4  # sanity: the mean includes row 0's positive share


def test_matches_lightly_block_formulation() -> None:
    # lightly's NTXentLoss (memory_bank_size=0): logits [[01 | 00 minus diag], [10 | 11 minus diag]].
    torch.manual_seed(0)
    b, t = 6, 0.1
    out0, out1 = torch.randn(b, 16), torch.randn(b, 16)
    z0, z1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
    off = ~torch.eye(b, dtype=torch.bool)
    l00 = (z0 @ z0.t() / t)[off].view(b, -1)
    l11 = (z1 @ z1.t() / t)[off].view(b, -1)
    logits = torch.cat((torch.cat((z0 @ z1.t() / t, l00), 1), torch.cat((z1 @ z0.t() / t, l11), 1)))
    expected = F.cross_entropy(logits, torch.arange(b).repeat(2))
    assert nt_xent(out0, out1, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_invariances() -> None:
    torch.manual_seed(1)
    out0, out1 = torch.randn(5, 8), torch.randn(5, 8)
    base = nt_xent(out0, out1)
    scale = torch.rand(5, 1) * 10 + 0.1  # L2 normalization removes any positive per-row scale
    assert torch.allclose(nt_xent(out0 * scale, out1 * 3.0), base, atol=1e-5)
    perm = torch.randperm(5)
    assert torch.allclose(nt_xent(out0[perm], out1[perm]), base, atol=1e-5)
    assert torch.allclose(nt_xent(out1, out0), base, atol=1e-5)  # symmetric in its two inputs


def test_aligned_pairs_score_lower_than_random() -> None:
    torch.manual_seed(2)
    x = torch.randn(16, 32)
    assert nt_xent(x, x + 0.01 * torch.randn_like(x)) < nt_xent(x, torch.randn_like(x))


def test_crosspoint_loss_is_intra_plus_cross_on_mean_points() -> None:
    torch.manual_seed(3)
    p1, p2, img = torch.randn(4, 256), torch.randn(4, 256), torch.randn(4, 256)
    loss = crosspoint_loss(p1, p2, img)
    assert torch.equal(loss.intra, nt_xent(p1, p2, 0.1))
    assert torch.allclose(loss.cross, nt_xent(torch.stack([p1, p2]).mean(dim=0), img, 0.1))
    assert torch.equal(loss.total, loss.intra + loss.cross)


def test_gradients_flow_and_are_finite() -> None:
    torch.manual_seed(4)
    p1, p2, img = (torch.randn(3, 8, requires_grad=True) for _ in range(3))
    crosspoint_loss(p1, p2, img).total.backward()
    for g in (p1.grad, p2.grad, img.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_smoothed_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    logp = F.log_softmax(logits, dim=1)[0]
    # eps 0.2 over C - 1 = 2 others: target [0.8, 0.1, 0.1] (the reference's cal_loss).
    expected = -(0.8 * logp[0] + 0.1 * logp[1] + 0.1 * logp[2])
    assert smoothed_cross_entropy(logits, torch.tensor([0])).item() == pytest.approx(
        expected.item(), rel=1e-6
    )
    assert smoothed_cross_entropy(torch.zeros(4, 5), torch.tensor([0, 1, 2, 3])).item() == pytest.approx(
        math.log(5)
    )
    eps0 = smoothed_cross_entropy(logits, torch.tensor([1]), eps=0.0)
    assert eps0.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([1])).item(), rel=1e-6)


def _gather_worker(rank: int, port: int, out0: torch.Tensor, out1: torch.Tensor, queue: object) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    b = out0.shape[0] // 2
    a0 = out0[rank * b : (rank + 1) * b].clone().requires_grad_()
    a1 = out1[rank * b : (rank + 1) * b].clone().requires_grad_()
    loss = nt_xent(a0, a1, 0.1, gather=True)
    loss.backward()
    # Plain lists: shared-memory tensors would die with this process before the parent reads them.
    assert a0.grad is not None and a1.grad is not None
    queue.put((rank, loss.item(), a0.grad.tolist(), a1.grad.tolist()))  # type: ignore[attr-defined]
    dist.barrier()
    dist.destroy_process_group()


def test_gathered_negatives_equal_the_global_batch() -> None:
    """Two gloo ranks with gather=True: mean loss and gradients equal one process on the whole batch."""
    import torch.multiprocessing as mp

    torch.manual_seed(5)
    out0, out1 = torch.randn(6, 8), torch.randn(6, 8)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_gather_worker, args=(r, port, out0, out1, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    g0, g1 = out0.clone().requires_grad_(), out1.clone().requires_grad_()
    full = nt_xent(g0, g1, 0.1)
    full.backward()
    assert (results[0][1] + results[1][1]) / 2 == pytest.approx(full.item(), rel=1e-5)
    # DDP averages gradients over 2 ranks; each rank's loss is a mean over its own rows.
    grad0 = torch.tensor([row for r in results for row in r[2]]) / 2
    grad1 = torch.tensor([row for r in results for row in r[3]]) / 2
    assert g0.grad is not None and g1.grad is not None
    assert torch.allclose(grad0, g0.grad, atol=1e-6) and torch.allclose(grad1, g1.grad, atol=1e-6)
