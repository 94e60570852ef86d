"""Preference vectors on the probability simplex: validation, grids and random sampling.

A preference ``w`` has one non-negative entry per objective (in the run's ``objectives`` order) and sums to 1.
``w[i]`` is always the weight on objective ``i`` (RiC's ``--preference`` is ``w[0]``, the weight on reward 1).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "SUM_TOLERANCE",
    "validate_preference",
    "simplex_grid",
    "named_grid",
    "preference_grid",
    "sample_simplex",
    "NAMED_GRIDS",
    "preference_tag",
    "preference_tags",
    "tag_digits",
]

# |sum(w) - 1| allowed before a preference is rejected (covers decimal input such as 0.1 + 0.2 + 0.7).
SUM_TOLERANCE = 1e-6

# RiC / Rewarded Soups / MORLHF evaluation grid for 3 objectives (spec section 1), in RiC's order. RiC writes
# the balanced vector as (0.33, 0.33, 0.33), which sums to 0.99; it is stored as exactly 1/3 each so that it
# lies on the simplex (the difference is below RiC's 0.1 score rounding).
_RIC_3 = [
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
    (0.1, 0.1, 0.8),
    (0.1, 0.8, 0.1),
    (0.2, 0.2, 0.6),
    (0.2, 0.4, 0.4),
    (0.2, 0.6, 0.2),
    (1 / 3, 1 / 3, 1 / 3),
    (0.4, 0.4, 0.2),
    (0.4, 0.2, 0.4),
    (0.6, 0.2, 0.2),
    (0.8, 0.1, 0.1),
    (1.0, 0.0, 0.0),
]

# Two-objective grids as the weight on objective 1 (w = (w1, 1 - w1)), from spec section 11.
NAMED_GRIDS: dict[str, dict[int, list[float] | list[tuple[float, ...]]]] = {
    "ric": {2: [i / 10 for i in range(11)], 3: _RIC_3},  # RiC, Rewarded Soups, MORLHF
    "sipo": {2: [0.2, 0.4, 0.6, 0.8]},
    "modpo": {2: [0.1, 0.5, 0.9]},
}


def validate_preference(w, k: int, name: str = "preference") -> np.ndarray:
    """Check that ``w`` is a length-``k`` simplex vector; return it as float64 renormalised to sum exactly 1.

    Raises ValueError naming the bad value: wrong length, NaN/inf, a negative entry, or a sum off 1 by more
    than ``SUM_TOLERANCE``.

    >>> validate_preference([0.25, 0.75], 2)
    array([0.25, 0.75])
    """
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {w!r} is not a vector of numbers") from None
    shown = np.round(arr, 6).tolist()
    if arr.ndim != 1 or arr.shape[0] != k:
        raise ValueError(f"{name} {shown} must have exactly {k} entries, one per objective")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} {shown} contains NaN or inf")
    if np.any(arr < 0):
        bad = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"{name} {shown} has negative entry w[{bad}] = {arr[bad]}; weights must be >= 0")
    total = float(arr.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(f"{name} {shown} sums to {total:.6g}; weights must sum to 1 (divide by the sum)")
    return arr / total


def simplex_grid(k: int, n: int) -> np.ndarray:
    """Every length-``k`` vector whose entries are multiples of ``1/n`` and sum to 1: C(n+k-1, k-1) rows.

    Rows are in lexicographic order of (w[0], w[1], ...), so for k = 2 the first column runs 0, 1/n, ..., 1.

    >>> simplex_grid(2, 2)
    array([[0. , 1. ],
           [0.5, 0.5],
           [1. , 0. ]])
    """
    _check_positive_int(k, "k")
    _check_positive_int(n, "n")
    # Stars and bars: positions of k-1 bars among n + k - 1 slots give the integer counts.
    rows = []
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        edges = (-1, *bars, n + k - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(k)])
    counts = np.array(rows, dtype=np.int64).reshape(-1, k)
    return counts[np.lexsort(counts.T[::-1])] / n


def named_grid(name: str, k: int) -> np.ndarray:
    """A published evaluation grid as an (m, k) array: "ric" (11 points for k=2, 13 vectors for k=3), "sipo"
    ({0.2, 0.4, 0.6, 0.8} on objective 1, k=2) or "modpo" ({0.1, 0.5, 0.9}, k=2).

    For k = 2 the rows are (w1, 1 - w1) with w1 the weight on objective 1, ascending.
    """
    if name not in NAMED_GRIDS:
        raise ValueError(f"unknown preference grid {name!r}; known: {sorted(NAMED_GRIDS)}")
    grids = NAMED_GRIDS[name]
    if k not in grids:
        raise ValueError(f"preference grid {name!r} is defined for k in {sorted(grids)}, not k={k}")
    if k == 2:
        return np.array([[w1, round(1.0 - w1, 12)] for w1 in grids[2]], dtype=np.float64)
    return np.array(grids[k], dtype=np.float64)


def preference_grid(spec: str, k: int) -> np.ndarray:
    """Parse a grid spec into an (m, k) array of validated preferences.

    ``spec`` is a grid name (see ``named_grid``), ``"simplex:<n>"`` (``simplex_grid(k, n)``) or
    ``"list:<w>;<w>;..."`` with comma-separated entries, e.g. ``"list:0.2,0.8;0.5,0.5"``.
    """
    spec = spec.strip()
    if spec.startswith("simplex:"):
        value = spec.split(":", 1)[1]
        if not value.strip().isdigit():
            raise ValueError(f"preference grid {spec!r}: expected 'simplex:<n>' with a positive integer n")
        return simplex_grid(k, int(value))
    if spec.startswith("list:"):
        body = spec.split(":", 1)[1]
        rows = [row for row in body.split(";") if row.strip()]
        if not rows:
            raise ValueError(f"preference grid {spec!r} lists no vectors; write e.g. 'list:0.2,0.8;0.5,0.5'")
        out = []
        for i, row in enumerate(rows):
            try:
                values = [float(v) for v in row.split(",")]
            except ValueError:
                raise ValueError(f"preference grid {spec!r}: vector {i} {row!r} is not comma-separated numbers") from None
            out.append(validate_preference(values, k, name=f"preference {i} in {spec!r}"))
        return np.stack(out)
    return named_grid(spec, k)


def sample_simplex(k: int, n: int, rng=None, alpha=1.0) -> np.ndarray:
    """``n`` random preferences from a Dirichlet(alpha) distribution: an (n, k) array, rows summing to 1.

    ``alpha`` is a scalar (symmetric; 1.0 = uniform on the simplex) or a length-k vector; ``rng`` is a numpy
    Generator or a seed.
    """
    _check_positive_int(k, "k")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (k,))
    if not np.all(alpha > 0):
        raise ValueError(f"Dirichlet alpha must be > 0, got {alpha.tolist()}")
    return np.random.default_rng(rng).dirichlet(alpha, size=n)


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def preference_tag(w, digits: int = 2) -> str:
    """The one name of a preference, in stage names, files and family keys: ``w=0.30,0.70``.

    >>> preference_tag([0.3, 0.7])
    'w=0.30,0.70'
    """
    return "w=" + ",".join(f"{float(x):.{digits}f}" for x in w)


def tag_digits(grid) -> int:
    """The fewest decimals (2, 4 or 6) that give every row of ``grid`` a distinct tag.

    >>> tag_digits([[0.333, 0.667], [0.334, 0.666]])
    4
    """
    rows = np.asarray(grid, dtype=np.float64).reshape(len(grid), -1)
    for digits in (2, 4, 6):
        if len({preference_tag(w, digits) for w in rows}) == len(rows):
            return digits
    raise ValueError("the preference grid holds duplicate rows")


def preference_tags(grid) -> list[str]:
    """Distinct tags for every grid row (more digits when two rows would collide)."""
    digits = tag_digits(grid)
    return [preference_tag(w, digits) for w in np.asarray(grid, dtype=np.float64)]
