"""Drift of a feature's distribution against its baseline month, from Feast's stored histograms.

The measure is the Jensen-Shannon distance (base 2), in [0, 1]: 0 for the same distribution, 1 for
distributions with no overlap. Chosen over PSI because it is symmetric, bounded and defined when a
bin is empty in one month (PSI divides by the bin's share and needs an invented epsilon there).

Feast bins each month's numeric histogram over that month's own min..max, so two months rarely share
bin edges. The finer histogram is re-binned onto the coarser one's edges (extended to cover both
ranges), each bin's count shared in proportion to its overlap: the uniform-within-bin assumption
a histogram already makes, applied to as few bins as possible.

Feast's bins are closed on the right (values on an inner edge fall in the bin that ends there), so
for an integer feature each bin's count belongs to the whole numbers it holds, shared evenly among
them; both months are then summed into the same cells (as wide as the widest bin). Counts of 0..9
in 20 bins compare value by value, where spreading would smear 1 over (0.5, 1.0] in one month and
(0.9, 1.35] in the other; months_active (0..72, 3 or 4 values per bin) compares in cells of 4.

Categorical histograms hold the top values plus an "other" count; they compare over the union of
values, "other" as one more category.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from streamflow import config

# Two documented levels of the Jensen-Shannon distance to the baseline month. Calibrated on
# Feast-style histograms of two months of 7,043 normal values (tests/unit/test_drift.py draws them):
# the same law ~0.03 (sampling noise), a mean shifted by 1/8 standard deviation ~0.06, by 1/4 ~0.1.
# "drift" at 0.1 is also Evidently's default for this test; "watch" at 0.05 sits above the noise.
DRIFT_THRESHOLD = 0.1
WATCH_THRESHOLD = 0.05
OTHER = "\x00other"
TOLERANCE = 1e-9  # Feast's edges are sums of floats (0.30000000000000004)
MAX_INTEGERS_PER_BIN = 1000  # wider bins of whole numbers compare as continuous values


@dataclass(frozen=True)
class Thresholds:
    drift: float = DRIFT_THRESHOLD
    watch: float = WATCH_THRESHOLD

    @classmethod
    def from_env(cls) -> Thresholds:
        """`DRIFT_THRESHOLD` and `DRIFT_WATCH_THRESHOLD` (distances in (0, 1)), else the defaults."""
        drift, watch = config.get(config.DRIFT_THRESHOLD), config.get(config.DRIFT_WATCH_THRESHOLD)
        if watch > drift:
            raise config.ConfigError(
                f"DRIFT_WATCH_THRESHOLD ({watch}) must not exceed DRIFT_THRESHOLD ({drift})"
            )
        return cls(drift=drift, watch=watch)

    def level(self, distance: float | None) -> str:
        """'drift', 'watch', 'ok', or 'n/a' when the distance is unknown."""
        if distance is None:
            return "n/a"
        if distance > self.drift:
            return "drift"
        return "watch" if distance > self.watch else "ok"


def distance(
    baseline: Mapping[str, Any] | None, current: Mapping[str, Any] | None, integer: bool = False
) -> float | None:
    """Jensen-Shannon distance between two stored Feast histograms (`integer`: of a feature whose
    values are whole numbers); None when either month has no values (the first month of a
    month-over-month feature, say)."""
    if not baseline or not current:
        return None
    if "values" in baseline or "values" in current:
        return _compare(_categorical(baseline), _categorical(current))
    widest = _widest_bin(baseline, current)
    if integer and widest <= MAX_INTEGERS_PER_BIN:
        cell = max(1, math.ceil(widest - TOLERANCE))
        return _compare(_cells(_integers(baseline), cell), _cells(_integers(current), cell))
    point_b, point_c = _point(baseline), _point(current)
    if point_b is not None and point_c is not None:  # two one-value months: same value or not
        return 0.0 if point_b == point_c else 1.0
    grid = _common_grid(baseline, current)
    return _js(_spread(baseline, grid), _spread(current, grid))


def _js(p: list[float], q: list[float]) -> float | None:
    p_arr, q_arr = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p_arr.sum() <= 0 or q_arr.sum() <= 0:
        return None
    return float(jensenshannon(p_arr, q_arr, base=2))


def _compare(p: Mapping[Any, float], q: Mapping[Any, float]) -> float | None:
    keys = sorted(set(p) | set(q), key=str)
    return _js([p.get(k, 0) for k in keys], [q.get(k, 0) for k in keys])


def _widest_bin(*histograms: Mapping[str, Any]) -> float:
    return max((_edges(h)[1] - _edges(h)[0] for h in histograms if _point(h) is None), default=0.0)


def _cells(mass: Mapping[int, float], width: int) -> dict[int, float]:
    """Whole numbers summed into cells of `width` (the widest bin, rounded up) counted from 0, so
    both months share the cells: a range of 70 values is not judged on 70 thin counts, whose
    sampling noise alone reads ~0.06."""
    cells: dict[int, float] = {}
    for value, count in mass.items():
        cells[value // width] = cells.get(value // width, 0.0) + count
    return cells


def _integers(histogram: Mapping[str, Any]) -> dict[int, float]:
    """Each bin's count shared among the whole numbers in it: [first edge, e1], then (e_i, e_i+1]."""
    edges, counts = _edges(histogram), histogram["counts"]
    point = _point(histogram)
    if point is not None:
        return {round(point): float(sum(counts))}
    mass: dict[int, float] = {}
    for i, count in enumerate(counts):
        if not count:
            continue
        low, high = edges[i], edges[i + 1]
        first = math.ceil(low - TOLERANCE) if i == 0 else math.floor(low + TOLERANCE) + 1
        last = math.floor(high + TOLERANCE)
        values = range(first, last + 1) if last >= first else [round((low + high) / 2)]
        for value in values:
            mass[value] = mass.get(value, 0.0) + count / len(values)
    return mass


def _categorical(histogram: Mapping[str, Any]) -> dict[str, float]:
    counts = {str(entry["value"]): float(entry["count"]) for entry in histogram.get("values", [])}
    if histogram.get("other_count"):
        counts[OTHER] = float(histogram["other_count"])
    return counts


def _point(histogram: Mapping[str, Any]) -> float | None:
    edges = _edges(histogram)
    return edges[0] if edges[0] == edges[-1] else None


def _edges(histogram: Mapping[str, Any]) -> list[float]:
    return [float(b) for b in histogram["bins"]]


def _common_grid(*histograms: Mapping[str, Any]) -> list[float]:
    """The edges of the coarser histogram, extended by its bin width to cover the other's range:
    the coarser one maps onto it exactly and only the finer one is split (at most one of its bins
    per edge), where a grid of every edge would split both and magnify in-bin shape differences."""
    binned = [h for h in histograms if _point(h) is None]
    coarse = max(binned, key=lambda h: _edges(h)[1] - _edges(h)[0])
    grid, width = _edges(coarse), _edges(coarse)[1] - _edges(coarse)[0]
    low = min(_edges(h)[0] for h in histograms)
    high = max(_edges(h)[-1] for h in histograms)
    below = math.ceil((grid[0] - low) / width - TOLERANCE) if low < grid[0] else 0
    above = math.ceil((high - grid[-1]) / width - TOLERANCE) if high > grid[-1] else 0
    return (
        [grid[0] - (i + 1) * width for i in reversed(range(below))]
        + grid
        + [grid[-1] + (i + 1) * width for i in range(above)]
    )


def _spread(histogram: Mapping[str, Any], grid: list[float]) -> list[float]:
    """The histogram's counts on the cells of `grid`, each bin's count shared in proportion to its
    overlap with a cell. A one-value month (Feast stores bins [v, v] with one count) is a point
    mass in the cell holding v."""
    cells = [0.0] * (len(grid) - 1)
    point = _point(histogram)
    if point is not None:
        cells[min(max(bisect.bisect_right(grid, point) - 1, 0), len(cells) - 1)] += float(
            sum(histogram["counts"])
        )
        return cells
    edges = _edges(histogram)
    for low, high, count in zip(edges, edges[1:], histogram["counts"], strict=False):
        if not count:
            continue
        first = max(bisect.bisect_right(grid, low) - 1, 0)
        for cell in range(first, len(cells)):
            if grid[cell] >= high:
                break
            overlap = min(high, grid[cell + 1]) - max(low, grid[cell])
            if overlap > 0:
                cells[cell] += count * overlap / (high - low)
    return cells
