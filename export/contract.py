"""The served models' tensor contract (docs/interfaces.md, `model_repository/`), in one place.

Torch-free: the config writer, the repository validator and the gateway all read it. Dims are given
without the batch axis, as in `config.pbtxt` (`max_batch_size > 0`); -1 is a variable axis.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NAMES: tuple[str, ...] = ("embed", "classify", "segment")
FP32 = "TYPE_FP32"
NUM_CATEGORIES = 16  # ShapeNetPart
NUM_PARTS = 50


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dims: tuple[int, ...]  # without the batch axis; -1 = any size (the point axis)
    data_type: str = FP32

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "data_type": self.data_type, "dims": list(self.dims)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


def model_spec(
    model: str,
    *,
    embedding_dim: int = 2048,
    projection_dim: int = 256,
    num_classes: int = 0,
    num_categories: int = NUM_CATEGORIES,
    num_parts: int = NUM_PARTS,
) -> ModelSpec:
    """The contract of one served model; sizes that depend on the checkpoint are arguments.

    `embedding_dim` is 2048 for DGCNN (the documented default) and 1024 for a PointNet checkpoint.
    """
    points = TensorSpec("points", (-1, 3))
    if model == "embed":
        return ModelSpec(
            model,
            (points,),
            (TensorSpec("embedding", (embedding_dim,)), TensorSpec("projection", (projection_dim,))),
        )
    if model == "classify":
        if num_classes <= 0:
            raise ValueError("classify needs num_classes > 0")
        return ModelSpec(
            model,
            (points,),
            (TensorSpec("logits", (num_classes,)), TensorSpec("embedding", (embedding_dim,))),
        )
    if model == "segment":
        return ModelSpec(
            model,
            (points, TensorSpec("category", (num_categories,))),
            (TensorSpec("part_logits", (-1, num_parts)),),
        )
    raise ValueError(f"unknown served model {model!r}; known: {', '.join(MODEL_NAMES)}")


def expected_names(model: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(input names, output names) the contract fixes for `model`, or None for a model we do not own."""
    if model not in MODEL_NAMES:
        return None
    spec = model_spec(model, num_classes=1)
    return spec.input_names, spec.output_names
