"""The class head: the scaler folded into one linear layer gives sklearn's scores, and the exported
`dgcnn` classifier predicts what sklearn predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from crosspoint import checkpoint
from crosspoint.models import create_model
from crosspoint.train.head import HeadConfig, fit_head, linear_layer, make_classifier


@pytest.mark.parametrize("kind", ["logreg", "linear_svc"])
@pytest.mark.parametrize("classes", [2, 5])
def test_folded_scaler_reproduces_sklearn_scores(kind: str, classes: int) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, 16)) * 3
    y = rng.integers(0, classes, size=300)
    x = (centres[y] + rng.normal(size=(300, 16))) * rng.uniform(0.01, 100, size=16) + rng.normal(size=16) * 5
    scaler = StandardScaler().fit(x)
    clf = make_classifier(kind, 1.0).fit(scaler.transform(x), y)
    weight, bias = linear_layer(clf, scaler)
    scores = x @ weight.T + bias
    reference = clf.decision_function(scaler.transform(x))
    if classes == 2:
        assert np.allclose(scores[:, 1] - scores[:, 0], 2 * reference, rtol=1e-6, atol=1e-6)
    else:
        assert np.allclose(scores, reference, rtol=1e-6, atol=1e-6)
    assert (scores.argmax(axis=1) == clf.predict(scaler.transform(x))).all()


def test_exported_head_agrees_with_sklearn_on_real_features(tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = create_model("dgcnn", k=10)
    source = tmp_path / "backbone.safetensors"
    checkpoint.save(source, backbone, {"training": {"task": "test"}})
    out = tmp_path / "cls.safetensors"
    cfg = HeadConfig(checkpoint=str(source), out=str(out), num_points=512, train_limit=240, Cs=(0.01, 0.1),
                     device="cpu")  # fmt: skip
    result = fit_head(cfg)
    assert result["sklearn_agreement_val"]["equal"] == 1.0
    assert result["C"] in (0.01, 0.1) and 0.0 <= result["val_accuracy"] <= 1.0

    loaded = checkpoint.load(out)
    assert loaded.model.config.num_classes == 40 and loaded.model.config.head == "linear"
    assert (
        loaded.class_names is not None
        and loaded.class_names[0] == "airplane"
        and len(loaded.class_names) == 40
    )
    assert (
        loaded.config["training"]["source_weights_sha256"] == checkpoint.read_config(source)["weights_sha256"]
    )
    source_state = backbone.state_dict()
    for name, tensor in loaded.model.state_dict().items():  # the backbone is untouched, the head is new
        if not name.startswith("head."):
            assert torch.equal(tensor, source_state[name]), name
    points = torch.rand(3, 512, 3) * 2 - 1
    with torch.no_grad():
        logits = loaded.model(points)
        assert logits.shape == (3, 40)
        assert torch.allclose(logits, loaded.model.forward_head(loaded.model.forward_features(points)))
