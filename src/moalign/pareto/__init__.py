"""Pareto machinery on maximised (n, k) score matrices: dominance layers, preference directions, weights,
scalarisations and quality indicators. Imports only numpy and moocore, so it works on any score matrix."""

from .directions import preference_direction_distance, select_nearest_to_direction
from .dominance import dominates, is_nondominated, pareto_layers
from .indicators import filter_front, hypervolume, igd, spacing, sparsity
from .scalarize import linear_scalarize, tchebycheff
from .weights import (
    named_grid,
    preference_grid,
    preference_tag,
    preference_tags,
    sample_simplex,
    simplex_grid,
    tag_digits,
    validate_preference,
)

__all__ = [
    "dominates",
    "filter_front",
    "hypervolume",
    "igd",
    "is_nondominated",
    "linear_scalarize",
    "named_grid",
    "pareto_layers",
    "preference_direction_distance",
    "preference_grid",
    "preference_tag",
    "preference_tags",
    "sample_simplex",
    "select_nearest_to_direction",
    "simplex_grid",
    "sparsity",
    "spacing",
    "tag_digits",
    "tchebycheff",
    "validate_preference",
]
