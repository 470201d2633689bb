"""Bilevel problems with exact answers, for checking a solver: strongly convex quadratics (closed form),
regularization selection (ridge and L2-logistic regression with a per-feature exp(u) penalty) and data
reweighting with a linear model (float64 references by Newton's method and L-BFGS-B). Each problem keeps its
data in ``tf.Variable`` s, so ``load`` / ``assign`` puts another instance of the same sizes into a compiled
solver. ``benchmarks/robustness.py`` runs every family (:data:`FAMILIES`).
"""

from .base import ToyBilevel
from .quadratic import (
    COUPLINGS,
    QuadraticBilevel,
    conditioned_data,
    conditioned_quadratic,
    least_squares_data,
    least_squares_quadratic,
    random_quadratic,
    random_quadratic_data,
)
from .regularization import RegularizationSelection, regularization_data, regularization_selection
from .reweighting import Reweighting, reweighting, reweighting_data

#: the generated families of the robustness benchmark: name -> (seed, **knobs) -> a ToyBilevel
FAMILIES = {
    "quadratic": random_quadratic,
    "ridge": lambda seed, **knobs: regularization_selection(seed, "ridge", **knobs),
    "logistic": lambda seed, **knobs: regularization_selection(seed, "logistic", **knobs),
    "reweighting": reweighting,
}

__all__ = [
    "ToyBilevel",
    "QuadraticBilevel",
    "RegularizationSelection",
    "Reweighting",
    "COUPLINGS",
    "FAMILIES",
    "random_quadratic_data",
    "random_quadratic",
    "least_squares_data",
    "least_squares_quadratic",
    "conditioned_data",
    "conditioned_quadratic",
    "regularization_data",
    "regularization_selection",
    "reweighting_data",
    "reweighting",
]
