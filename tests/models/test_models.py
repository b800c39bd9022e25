"""Shapes, parameter counts and the exactness of the per-point EdgeConv form, for every registered model."""

from __future__ import annotations

import pytest
import torch

from crosspoint.models import count_parameters, create_model, list_models
from crosspoint.models.dgcnn import graph_feature, knn


def _inputs(name: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    if name.endswith("_image"):
        return (torch.randn(batch, 3, 64, 64),)
    if name == "dgcnn_partseg":
        return torch.randn(batch, 256, 3), torch.eye(16)[:batch]
    return (torch.randn(batch, 256, 3),)


@pytest.mark.parametrize("name", list_models())
def test_every_model_runs_forward_and_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    inputs = _inputs(name)
    out = model(*inputs)
    if hasattr(model, "project") and not name.endswith("_image"):
        # With no class head the projection is what training back-propagates through.
        out = model.project(model.forward_features(*inputs))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_config_is_a_dataclass_with_the_registry_name(name: str) -> None:
    import dataclasses

    model = create_model(name)
    assert dataclasses.is_dataclass(model.config)
    assert model.model_name == name


def test_unknown_config_key_is_an_error() -> None:
    with pytest.raises(TypeError, match="unknown config keys"):
        create_model("dgcnn", kk=3)
    with pytest.raises(KeyError, match="unknown model"):
        create_model("dgcnn3")


def test_dgcnn_embedding_projection_and_counts() -> None:
    model = create_model("dgcnn", k=20).eval()
    with torch.no_grad():
        feat = model.forward_features(torch.randn(3, 1024, 3))
        assert feat.shape == (3, 2048)
        assert model.project(feat).shape == (3, 256)
        assert model.forward_head(feat, pre_logits=True) is feat
    backbone = count_parameters(model) - count_parameters(model.projection)
    # Reference DGCNN: EdgeConvs 6*64 + 128*64 + 128*128 + 256*256, conv5 512*1024, + BN.
    assert backbone == 617_856
    assert count_parameters(model.projection) == 2048 * 1024 + 1024 + 2 * 1024 + 1024 * 256 + 256
    classifier = create_model("dgcnn", num_classes=40, head="mlp")
    assert count_parameters(classifier) - count_parameters(classifier.projection) == 1_809_576
    linear = create_model("dgcnn", num_classes=40)
    with torch.no_grad():
        assert linear.eval()(torch.randn(2, 128, 3)).shape == (2, 40)


def test_dgcnn_feature_is_max_and_avg_pool() -> None:
    model = create_model("dgcnn").eval()
    points = torch.randn(1, 200, 3)
    with torch.no_grad():
        x = points.transpose(2, 1)
        xs = [model.edge1(x)]
        for layer in (model.edge2, model.edge3, model.edge4):
            xs.append(layer(xs[-1]))
        per_point = model.conv5(torch.cat(xs, dim=1))
        expected = torch.cat((per_point.max(dim=-1)[0], per_point.mean(dim=-1)), dim=1)
        torch.testing.assert_close(model.forward_features(points), expected)


def test_pointnet_embedding_is_1024() -> None:
    model = create_model("pointnet").eval()
    with torch.no_grad():
        feat = model.forward_features(torch.randn(2, 512, 3))
    assert feat.shape == (2, 1024)
    assert model.project(feat).shape == (2, 256)


def test_knn_includes_self_and_is_sorted_by_distance() -> None:
    x = torch.randn(2, 3, 64)
    idx = knn(x, 5)
    assert idx.shape == (2, 64, 5)
    assert (idx[..., 0] == torch.arange(64)).all()
    brute = torch.cdist(x.transpose(2, 1), x.transpose(2, 1)).topk(5, largest=False)[1]
    assert (idx == brute).float().mean() > 0.99  # ties aside


def test_graph_feature_is_neighbour_minus_centre_and_centre() -> None:
    x = torch.randn(1, 4, 30)
    feat = graph_feature(x, k=3)
    idx = knn(x, 3)
    i, j = 7, 2
    neighbour = x[0, :, idx[0, i, j]]
    torch.testing.assert_close(feat[0, :4, i, j], neighbour - x[0, :, i])
    torch.testing.assert_close(feat[0, 4:, i, j], x[0, :, i])


@pytest.mark.parametrize("train", [False, True])
def test_point_form_edgeconv_layer_equals_edge_form(train: bool) -> None:
    from crosspoint.models.dgcnn import EdgeConv

    torch.manual_seed(0)
    point, edge = EdgeConv(64, 128, k=20, form="point"), EdgeConv(64, 128, k=20, form="edge")
    edge.load_state_dict(point.state_dict())
    point.train(train)
    edge.train(train)
    x = torch.randn(4, 64, 512)
    torch.testing.assert_close(point(x), edge(x), atol=2e-5, rtol=1e-4)


def test_point_form_dgcnn_equals_edge_form_in_eval() -> None:
    # float64: in float32 the forms' rounding (~1e-7) can flip a near-tied neighbour in a deeper kNN.
    torch.manual_seed(0)
    point = create_model("dgcnn", edgeconv="point").double().eval()
    edge = create_model("dgcnn", edgeconv="edge").double().eval()
    edge.load_state_dict(point.state_dict())
    points = torch.randn(4, 512, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(
            point.forward_features(points), edge.forward_features(points), atol=1e-10, rtol=1e-9
        )


def test_partseg_shapes_and_identity_transform_at_init() -> None:
    model = create_model("dgcnn_partseg", k=20).eval()
    points = torch.randn(2, 300, 3)
    with torch.no_grad():
        logits = model(points, torch.eye(16)[[3, 7]])
        features = model.forward_features(points, torch.eye(16)[[3, 7]])
        t = model.transform_net(graph_feature(points.transpose(2, 1), 20))
    assert logits.shape == (2, 300, 50)
    assert features.shape == (2, 1280, 300)
    torch.testing.assert_close(t, torch.eye(3).expand(2, 3, 3))


@pytest.mark.parametrize(("name", "dim"), [("resnet50_image", 2048), ("resnet18_image", 512)])
def test_image_encoder_feature_dims(name: str, dim: int) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        feat = model.forward_features(torch.randn(2, 3, 224, 224))
    assert feat.shape == (2, dim)
    assert model.project(feat).shape == (2, 256)
    assert all(layer.bias is None for layer in model.projection if isinstance(layer, torch.nn.Linear))


def test_resnet50_trunk_matches_torchvision_parameter_count() -> None:
    model = create_model("resnet50_image")
    # torchvision resnet50 has 25,557,032 parameters including its 2048*1000+1000 fc layer.
    assert count_parameters(model) - count_parameters(model.projection) == 25_557_032 - 2_049_000
