"""mIoU on hand-made cases: the reference's per-shape part IoU, empty unions, category restriction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crosspoint.eval.partseg import category_part_mask, miou_summary, restricted_argmax, shape_ious

AIRPLANE, BAG, CHAIR = 0, 1, 4  # parts: Airplane 0-3, Bag 4-5, Chair 12-15


def test_perfect_prediction_scores_one_even_with_absent_parts() -> None:
    target = np.array([[0, 0, 1, 1]])  # parts 2 and 3 of the airplane are absent from truth and prediction
    assert shape_ious(target.copy(), target, [AIRPLANE])[0] == 1.0


def test_hand_computed_iou() -> None:
    # Bag (parts 4, 5). truth: 4 4 4 5 ; pred: 4 4 5 5
    # part 4: I = 2, U = 3 -> 2/3 ; part 5: I = 1, U = 2 -> 1/2 ; shape mIoU = 7/12.
    pred = np.array([[4, 4, 5, 5]])
    target = np.array([[4, 4, 4, 5]])
    assert shape_ious(pred, target, [BAG])[0] == pytest.approx(7 / 12)


def test_empty_union_counts_one_and_wrong_parts_count_zero() -> None:
    # Airplane, 4 parts. truth all part 0, prediction all part 1:
    # part 0: I 0 U 4 -> 0 ; part 1: I 0 U 4 -> 0 ; parts 2, 3: empty union -> 1 each. mean = 0.5.
    pred = np.ones((1, 4), dtype=int)
    target = np.zeros((1, 4), dtype=int)
    assert shape_ious(pred, target, [AIRPLANE])[0] == pytest.approx(0.5)


def test_instance_and_class_miou() -> None:
    pred = np.array([[4, 4, 5, 5], [4, 4, 4, 5], [12, 12, 13, 13]])
    target = np.array([[4, 4, 4, 5], [4, 4, 4, 5], [12, 12, 13, 13]])
    ious = shape_ious(pred, target, [BAG, BAG, CHAIR])
    assert ious.tolist() == pytest.approx([7 / 12, 1.0, 1.0])
    summary = miou_summary(ious, [BAG, BAG, CHAIR])
    assert summary["instance_miou"] == pytest.approx((7 / 12 + 1 + 1) / 3)
    # class mIoU: Bag mean (7/12 + 1) / 2, Chair 1, then the mean over the two categories present.
    assert summary["class_miou"] == pytest.approx(((7 / 12 + 1) / 2 + 1) / 2)
    assert summary["per_category"]["Bag"]["shapes"] == 2


def test_predictions_are_restricted_to_the_category() -> None:
    logits = torch.zeros(2, 3, 50)
    logits[:, :, 30] = 10.0  # a Motorbike part scores highest everywhere
    logits[0, :, 13] = 1.0  # Chair part 13 is the best of the chair's own parts
    logits[1, :, 5] = 1.0  # Bag part 5
    pred = restricted_argmax(logits, torch.tensor([CHAIR, BAG]))
    assert pred.tolist() == [[13, 13, 13], [5, 5, 5]]
    mask = category_part_mask(torch.tensor([AIRPLANE, 15]))
    assert mask[0].nonzero().flatten().tolist() == [0, 1, 2, 3]
    assert mask[1].nonzero().flatten().tolist() == [47, 48, 49]
