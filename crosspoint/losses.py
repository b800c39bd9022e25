"""CrossPoint's losses: NT-Xent (intra- and cross-modal) and the part-seg label-smoothed cross-entropy.

`nt_xent` is the loss the reference gets from lightly's `NTXentLoss(temperature=0.1)` with no memory
bank: the two [B, D] inputs are L2-normalized and stacked into 2B samples; each sample's positive is its
partner in the other input and ALL 2B - 2 remaining samples are negatives (pairs within the same input
included, so point-point and image-image pairs are negatives in the cross-modal loss); cross-entropy
averaged over the 2B rows (MohamedAfham/CrossPoint `train_crosspoint.py`, lightly `loss/ntx_ent_loss.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

TEMPERATURE = 0.1  # the reference's NTXentLoss(temperature=0.1)


def nt_xent(
    out0: torch.Tensor, out1: torch.Tensor, temperature: float = TEMPERATURE, gather: bool = False
) -> torch.Tensor:
    """NT-Xent of two [B, D] batches where row i of `out0` and row i of `out1` are the positive pair.

    `gather=True` (DDP only): negatives come from every rank's batch, as lightly's
    `gather_distributed=True`; the mean over ranks of this loss is then the loss of the global batch.
    The reference trains with per-rank negatives (`gather=False`).
    """
    if out0.shape != out1.shape or out0.dim() != 2:
        raise ValueError(
            f"nt_xent expects two [B, D] tensors of one shape, got {tuple(out0.shape)} and {tuple(out1.shape)}"
        )
    b = out0.shape[0]
    # Computed in float32 even under autocast: 1/temperature = 10 magnifies bf16 rounding in the logits.
    z0, z1 = F.normalize(out0.float(), dim=1), F.normalize(out1.float(), dim=1)
    queries = torch.cat((z0, z1))
    rank, world = 0, 1
    if gather and torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        keys = torch.cat((_GatherWithGrad.apply(z0), _GatherWithGrad.apply(z1)))
    else:
        keys = queries
    logits = queries @ keys.t() / temperature
    # Where this rank's rows sit among the keys: [all out0 | all out1], b rows per rank in each half.
    own = torch.cat((torch.arange(b) + rank * b, torch.arange(b) + (world + rank) * b)).to(z0.device)
    partner = torch.cat((own[b:], own[:b]))
    # A sample is never its own negative: mask it out of the softmax.
    logits[torch.arange(2 * b, device=z0.device), own] = float("-inf")
    return F.cross_entropy(logits, partner)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward returns each rank the summed gradient of its own rows."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)  # every rank's loss touched these rows
        b = grad.shape[0] // torch.distributed.get_world_size()
        rank = torch.distributed.get_rank()
        return grad[rank * b : (rank + 1) * b]


@dataclass
class CrossPointLoss:
    intra: torch.Tensor
    cross: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.intra + self.cross


def crosspoint_loss(
    point1: torch.Tensor,
    point2: torch.Tensor,
    image: torch.Tensor,
    temperature: float = TEMPERATURE,
    gather: bool = False,
) -> CrossPointLoss:
    """Projections [B, 256] of two point views and one rendered image -> intra + cross-modal NT-Xent.

    Cross-modal: the mean of the two point projections (before normalization, as the reference
    `torch.stack([t1, t2]).mean(dim=0)`) against the image projection.
    """
    intra = nt_xent(point1, point2, temperature, gather)
    cross = nt_xent((point1 + point2) / 2, image, temperature, gather)
    return CrossPointLoss(intra=intra, cross=cross)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """The reference `cal_loss`: 1 - eps on the true class and eps / (C - 1) on each other class.

    (torch's `label_smoothing=eps` spreads eps over all C classes instead, a slightly different target.)
    logits [M, C], target [M] int.
    """
    n_class = logits.shape[-1]
    one_hot = torch.zeros_like(logits).scatter(1, target.view(-1, 1), 1.0)
    soft = one_hot * (1 - eps) + (1 - one_hot) * eps / (n_class - 1)
    return -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
