"""EdgeConv without the N*k edge tensor: the fast training (and CPU eval) form of `dgcnn.EdgeConv`.

The reference layer computes y_e = W [x_j - x_i; x_i] for every edge e = (i, j) of the kNN graph,
batch-normalizes y over all n = B*N*k edges, applies LeakyReLU and takes the max over the k
neighbours. With W = [Wa, Wb], y_e = P_j + Q_i where P = Wa x and Q = (Wb - Wa) x are per-point
projections (N rows, not N*k). The batch statistics follow from per-point quantities: with c_m the
number of edges that end at point m (its in-degree) and S_i = sum_j P_j the neighbour sum,

    mean = sum_m c_m P_m / n + mean_i Q_i
    var  = (sum_m c_m P'_m^2 + k sum_i Q'_i^2 + 2 sum_i Q'_i S'_i) / n      (P', Q', S' centred)

BatchNorm is then the per-channel affine s y + t, and LeakyReLU is increasing, so

    max_j LReLU(s (P_j + Q_i) + t) = LReLU(max_j (s P)_j + s Q_i + t)

with no case on the sign of s: the max is taken of s*P. What is left per edge is two reductions over
the kNN graph, a neighbour sum (S) and a neighbour max (of s*P), both CSR sparse-dense products
(`torch.sparse.mm` and its `amax` reduction) that read neighbour rows without writing the edge
tensor. The max's backward sends each output's gradient to its argmax neighbour only (as the
reference's `max(dim=-1)` does); the sum's backward is the transposed graph. Everything else is
ordinary autograd, so gradients reach W, gamma and beta through the statistics as in BatchNorm.
The sparse reductions exist on CPU only; `dgcnn.EdgeConv` keeps the gather form elsewhere.

The neighbour search (`knn`) and the row gather (`gather_rows`) every form uses (training, reference,
exported: `crosspoint/models/inference.py`) live here too, once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def knn(x: torch.Tensor, k: int, *, points_last: bool = False) -> torch.Tensor:
    """Indices [B, N, k] of every point's k nearest neighbours in feature space, self included.

    x is [B, C, N] (the models' internal layout) or, with `points_last`, [B, N, C] (the exported
    form's). Both run the same ops on the same memory, so both layouts give the same neighbours:
    score 2 <x_i, x_j> - |x_j|^2 - |x_i|^2 by one matmul, then topk with a constant k.
    """
    rows = x if points_last else x.transpose(2, 1)  # [B, N, C]
    inner = torch.matmul(rows, rows.transpose(2, 1))
    xx = torch.sum(rows * rows, dim=-1, keepdim=True)  # [B, N, 1]: |x_i|^2
    neg_dist = 2 * inner - xx.transpose(2, 1) - xx
    return neg_dist.topk(k=k, dim=-1)[1]


def flat_neighbours(idx: torch.Tensor, b: int, n: int) -> torch.Tensor:
    """idx [B, N, k] (neighbours within each cloud) -> [B*N*k] rows of the batch's [B*N, C] points."""
    return (idx + torch.arange(b, device=idx.device).view(-1, 1, 1) * n).reshape(-1)


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, N, C], idx [B, N, k] -> neighbour rows [B, N, k, C] by one flat gather (fastest in ORT)."""
    b, n, c = x.shape
    k = idx.shape[-1]
    flat = flat_neighbours(idx, b, n)
    return x.reshape(b * n, c)[flat].view(b, n, k, c)


@dataclass
class NeighbourGraph:
    """The kNN graph of a batch as CSR over the B*N points: row i holds i's k neighbours."""

    csr: torch.Tensor  # [BN, BN], k entries per row, values 1
    flat: torch.Tensor  # [BN*k] neighbour row of each edge, batch offset included
    k: int
    _transposed: torch.Tensor | None = None

    @classmethod
    def from_knn(cls, idx: torch.Tensor, dtype: torch.dtype = torch.float32) -> NeighbourGraph:
        """idx [B, N, k] (neighbours within each cloud) -> the block-diagonal graph of the batch."""
        b, n, k = idx.shape
        flat = flat_neighbours(idx, b, n)
        rows = torch.arange(0, b * n * k + 1, k, device=idx.device)
        return cls(_csr(rows, flat, b * n, dtype), flat, k)

    @property
    def dtype(self) -> torch.dtype:
        return self.csr.dtype

    @property
    def size(self) -> int:
        return int(self.csr.shape[0])

    def in_degree(self) -> torch.Tensor:
        """c_m: how many edges end at each point, float [BN]."""
        return torch.bincount(self.flat, minlength=self.size).to(self.dtype)

    def transposed(self) -> torch.Tensor:
        """CSR of the reversed edges (row m lists the points that have m as a neighbour)."""
        if self._transposed is None:
            # CSR.t() is CSC; its conversion is a counting sort (~3x faster than argsort here).
            self._transposed = self.csr.t().to_sparse_csr()
        return self._transposed


def _csr(rows: torch.Tensor, cols: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we only use plain SpMM
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            rows, cols, torch.ones(cols.numel(), dtype=dtype, device=cols.device), size=(size, size)
        )


class _NeighbourSum(torch.autograd.Function):
    """rows [BN, C] -> [BN, C], row i = sum of its neighbours' rows."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, graph: NeighbourGraph) -> torch.Tensor:
        ctx.graph = graph
        return torch.sparse.mm(graph.csr, rows)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.sparse.mm(ctx.graph.transposed(), grad.contiguous()), None


class _NeighbourMax(torch.autograd.Function):
    """rows [BN, C] -> [BN, C], row i = per-channel max over its neighbours' rows."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, graph: NeighbourGraph) -> torch.Tensor:
        if not ctx.needs_input_grad[0]:
            return torch.sparse.mm(graph.csr, rows, reduce="amax")
        # The kernel records the argmax only when its input takes part in autograd.
        with torch.enable_grad():
            out, arg = torch.ops.aten._sparse_mm_reduce_impl(
                graph.csr, rows.detach().requires_grad_(), "amax"
            )
        ctx.save_for_backward(graph.csr.col_indices()[arg])
        ctx.rows = rows.shape[0]
        return out.detach()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (winner,) = ctx.saved_tensors
        grad = grad.contiguous()
        return grad.new_zeros(ctx.rows, grad.shape[1]).scatter_add_(0, winner, grad), None


def neighbour_sum(rows: torch.Tensor, graph: NeighbourGraph) -> torch.Tensor:
    out: torch.Tensor = _NeighbourSum.apply(rows, graph)
    return out


def neighbour_max(rows: torch.Tensor, graph: NeighbourGraph) -> torch.Tensor:
    out: torch.Tensor = _NeighbourMax.apply(rows, graph)
    return out


def edge_batch_stats(
    p: torch.Tensor, q: torch.Tensor, graph: NeighbourGraph
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of y_e = P_j + Q_i over all edges (see the module doc)."""
    n = graph.flat.numel()
    degree = graph.in_degree()
    mean_p = (degree @ p) / n
    mean_q = q.mean(dim=0)
    pc, qc = p - mean_p, q - mean_q
    # S'_i = sum_j P'_j = S_i - k mean_p: centring after the sum keeps one sparse product.
    cross = (qc * (neighbour_sum(p.contiguous(), graph) - graph.k * mean_p)).sum(dim=0)
    var = (degree @ pc.square() + graph.k * qc.square().sum(dim=0) + 2 * cross) / n
    return mean_p + mean_q, var.clamp_min(0)


def _update_running(
    bn: nn.modules.batchnorm._BatchNorm, mean: torch.Tensor, var: torch.Tensor, n: int
) -> None:
    """BatchNorm's running-statistics update (unbiased variance), as `F.batch_norm` does it."""
    assert bn.running_mean is not None and bn.running_var is not None
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)  # type: ignore[arg-type]
    with torch.no_grad():
        bn.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
        bn.running_var.mul_(1 - factor).add_(var.detach() * (n / max(n - 1, 1)), alpha=factor)


def fused_edge_conv(
    x: torch.Tensor,
    idx: torch.Tensor,
    weight: torch.Tensor,
    bn: nn.modules.batchnorm._BatchNorm,
    negative_slope: float,
) -> torch.Tensor:
    """max_k LeakyReLU(BN(conv([x_j - x_i; x_i]))) for x [B, C, N], neighbours idx [B, N, k] -> [B, O, N].

    `weight` is the 1x1 conv's [O, 2C(, 1, 1)]; BN runs on batch statistics in train mode (updating
    its running buffers) and on its running statistics in eval mode, exactly as `bn` would.
    """
    b, c, n = x.shape
    w = weight.flatten(1)
    wa, wb = w[:, :c], w[:, c:]
    # One GEMM for both projections (bf16 under autocast); the statistics and reductions in fp32.
    pq = x.transpose(2, 1).reshape(b * n, c) @ torch.cat((wa, wb - wa)).t()
    if pq.dtype in (torch.bfloat16, torch.float16):
        pq = pq.float()
    p, q = pq.chunk(2, dim=1)
    graph = NeighbourGraph.from_knn(idx, pq.dtype)
    with torch.autocast(x.device.type, enabled=False):  # autocast would send the SpMMs to bf16
        return _normalize_and_max(p, q, graph, bn, negative_slope).view(b, n, -1).transpose(2, 1)


def _normalize_and_max(
    p: torch.Tensor,
    q: torch.Tensor,
    graph: NeighbourGraph,
    bn: nn.modules.batchnorm._BatchNorm,
    negative_slope: float,
) -> torch.Tensor:
    batch_stats = bn.training or bn.running_mean is None
    if batch_stats:
        mean, var = edge_batch_stats(p, q, graph)
        if bn.training and bn.running_mean is not None:
            _update_running(bn, mean, var, graph.flat.numel())
    else:
        assert bn.running_mean is not None and bn.running_var is not None
        mean, var = bn.running_mean, bn.running_var
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    out = neighbour_max(p * scale, graph) + q * scale + shift
    return F.leaky_relu(out, negative_slope)
