"""Geometry preprocessing shared by training, the gateway and the batch client (torch-free, no HTTP).

    shape = load("chair.glb")                      # or load(data, format="ply"), load(array)
    points, receipt = prepare(shape, num_points=1024, up_axis="z", seed=0)
    original = to_model_frame(shape.vertices, receipt)   # same transform, for label transfer

Readers check declared counts against byte sizes and `Limits` before allocating, refuse
external references, and raise `GeometryError` subclasses with a stable `code` for bad input.
"""

from crosspoint.geometry.errors import (
    ERROR_CODES,
    DegenerateGeometryError,
    EmptyGeometryError,
    ExternalReferenceError,
    GeometryError,
    InvalidArgumentError,
    LimitExceededError,
    ParseError,
    TooFewPointsError,
    UnsupportedExtensionError,
    UnsupportedFormatError,
)
from crosspoint.geometry.formats import SUPPORTED_FORMATS, load
from crosspoint.geometry.limits import Limits
from crosspoint.geometry.normalize import UP_AXES, canonical_up_axis, normalize_unit_sphere, up_axis_rotation
from crosspoint.geometry.prepare import Receipt, prepare, to_model_frame
from crosspoint.geometry.sampling import deduplicate, farthest_point_sample, sample_surface
from crosspoint.geometry.shape import Shape

__all__ = [
    "ERROR_CODES",
    "SUPPORTED_FORMATS",
    "UP_AXES",
    "DegenerateGeometryError",
    "EmptyGeometryError",
    "ExternalReferenceError",
    "GeometryError",
    "InvalidArgumentError",
    "LimitExceededError",
    "Limits",
    "ParseError",
    "Receipt",
    "Shape",
    "TooFewPointsError",
    "UnsupportedExtensionError",
    "UnsupportedFormatError",
    "canonical_up_axis",
    "deduplicate",
    "farthest_point_sample",
    "load",
    "normalize_unit_sphere",
    "prepare",
    "sample_surface",
    "to_model_frame",
    "up_axis_rotation",
]
