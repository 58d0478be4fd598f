"""Counter-based random numbers: every draw is a pure function of (seed, stream, index, draw).

The generator works through leads in chunks, yet a lead's values must not depend on the chunk
it lands in. Hashing the tuple with the splitmix64 finalizer gives each lead (or rep, or
activity slot) its own reproducible numbers without carrying generator state from one chunk
to the next, so any chunk size yields the same history for a seed.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from scipy.special import gammaincinv, ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_DRAW_SHIFT = np.uint64(40)  # index < 2**40 and draw < 2**24 keep (index, draw) pairs distinct
MAX_INDEX = 2**40
MAX_DRAW = 2**24


class Stream(IntEnum):
    """One id per kind of draw, so adding a draw never shifts the numbers of another."""

    ARRIVAL = 1
    CHANNEL = 2
    CAMPAIGN = 3
    KEYWORD = 4
    REGION = 5
    INDUSTRY = 6
    INDUSTRY_MISSING = 7
    SIZE = 8
    SIZE_MISSING = 9
    BUDGET_DECLARED = 10
    BUDGET_AMOUNT = 11
    EXISTING_CUSTOMER = 12
    TITLE = 13
    QUALITY_NOISE = 14
    ENGAGEMENT = 15
    COMPANY_CITY = 16
    COMPANY_BRAND = 17
    ROUTING_TIER = 18
    ROUTING_REP = 19
    NEVER_CONTACTED = 20
    RESPONSE_DELAY = 21
    SLOW_RESPONSE = 22
    SLOW_RESPONSE_EXTRA = 23
    BUSINESS_HOURS = 24
    OUTCOME = 25
    DWELL = 26
    LOST_DELAY = 27
    LEFT_OPEN = 28
    RECYCLED = 29
    RATING = 30
    ACTIVITY_COUNT = 31
    ACTIVITY_TIME = 32
    ACTIVITY_DIRECTION = 33
    ACTIVITY_TYPE = 34
    ACTIVITY_OUTCOME = 35
    ACTIVITY_REPLY = 36
    ACTIVITY_REPLY_DELAY = 37
    FIRST_CONTACT_TYPE = 38
    ANCHOR_TYPE = 39
    ORDER_AMOUNT = 40
    ORDER_DELAY = 41
    REPEAT_RATE = 42
    REPEAT_LIFETIME = 43
    REPEAT_COUNT = 44
    REPEAT_TIME = 45
    REPEAT_AMOUNT = 46
    REFUND = 47
    REFUND_SHARE = 48
    REFUND_DELAY = 49
    PRIOR_FIRST_ORDER = 50
    REP_REGION = 51
    REP_SECOND_REGION = 52
    REP_SKILLS = 53
    REP_HIRED = 54
    REP_LEFT = 55
    REP_LEFT_AT = 56
    REP_CAPACITY = 57
    REP_EFFECT = 58
    REP_NAME = 59
    REP_TIER = 60
    COMPANY_NAME_WORD = 61


def _mix(values: np.ndarray) -> np.ndarray:
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return z ^ (z >> np.uint64(31))


class CounterRandom:
    """Reproducible uniform, normal, lognormal, gamma, Poisson and categorical draws.

    ``index`` is an integer array of lead, rep or row numbers below 2**40. ``draw``, below
    2**24, separates several draws of the same stream for one index, such as the k-th
    activity of a lead or a retry. Equal arguments always return equal numbers.
    """

    def __init__(self, seed: int) -> None:
        if seed < 0 or seed >= 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        self.seed = seed
        with np.errstate(over="ignore"):
            self._seed_key = _mix(np.array([seed], dtype=np.uint64))[0]

    def uniform(self, stream: Stream, index: np.ndarray, draw: int | np.ndarray = 0) -> np.ndarray:
        """Return uniform numbers in the open interval (0, 1), one per element of ``index``."""
        index_i = np.asarray(index, dtype=np.int64)
        draw_i = np.asarray(draw, dtype=np.int64)
        if index_i.size and (index_i.min() < 0 or index_i.max() >= MAX_INDEX):
            raise ValueError(
                f"index must be in [0, 2**40), got values from {index_i.min()} to {index_i.max()}"
            )
        if draw_i.size and (draw_i.min() < 0 or draw_i.max() >= MAX_DRAW):
            raise ValueError(f"draw must be in [0, 2**24), got values from {draw_i.min()} to {draw_i.max()}")
        index_u = index_i.astype(np.uint64)
        draw_u = draw_i.astype(np.uint64)
        with np.errstate(over="ignore"):
            stream_key = _mix(self._seed_key ^ (np.uint64(int(stream)) * _GOLDEN))
            counter = index_u | (draw_u << _DRAW_SHIFT)
            bits = _mix(_mix(counter) ^ stream_key)
        return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53

    def normal(self, stream: Stream, index: np.ndarray, draw: int | np.ndarray = 0) -> np.ndarray:
        """Return standard normal numbers."""
        result: np.ndarray = ndtri(self.uniform(stream, index, draw))
        return result

    def lognormal(
        self,
        stream: Stream,
        index: np.ndarray,
        median: float | np.ndarray,
        sigma: float | np.ndarray,
        draw: int | np.ndarray = 0,
    ) -> np.ndarray:
        """Return lognormal numbers with the given median and log-scale standard deviation."""
        result: np.ndarray = np.asarray(median) * np.exp(np.asarray(sigma) * self.normal(stream, index, draw))
        return result

    def exponential(
        self, stream: Stream, index: np.ndarray, mean: float | np.ndarray, draw: int | np.ndarray = 0
    ) -> np.ndarray:
        """Return exponential numbers with the given mean."""
        result: np.ndarray = -np.log(self.uniform(stream, index, draw)) * np.asarray(mean)
        return result

    def gamma(
        self, stream: Stream, index: np.ndarray, shape: float, mean: float | np.ndarray, draw: int = 0
    ) -> np.ndarray:
        """Return gamma numbers with the given shape and mean."""
        standard: np.ndarray = gammaincinv(shape, self.uniform(stream, index, draw))
        result: np.ndarray = standard / shape * np.asarray(mean)
        return result

    def bernoulli(
        self, stream: Stream, index: np.ndarray, probability: float | np.ndarray, draw: int | np.ndarray = 0
    ) -> np.ndarray:
        """Return booleans that are True with ``probability``."""
        result: np.ndarray = self.uniform(stream, index, draw) < np.asarray(probability)
        return result

    def poisson(
        self, stream: Stream, index: np.ndarray, mean: float | np.ndarray, draw: int | np.ndarray = 0
    ) -> np.ndarray:
        """Return Poisson counts by inverting the CDF of each element's ``mean``."""
        return poisson_from_uniform(self.uniform(stream, index, draw), np.asarray(mean, dtype=np.float64))

    def categorical(
        self, stream: Stream, index: np.ndarray, weights: np.ndarray, draw: int | np.ndarray = 0
    ) -> np.ndarray:
        """Return category codes drawn with ``weights``.

        ``weights`` is either one row of non-negative weights shared by every element, or a
        matrix with one row per element of ``index``. Rows need not sum to one.
        """
        uniforms = self.uniform(stream, index, draw)
        return categorical_from_uniform(uniforms, weights)


def categorical_from_uniform(uniforms: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return the category code that each uniform number falls into under ``weights``."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:
        cumulative = np.cumsum(weights)
        codes = np.searchsorted(cumulative / cumulative[-1], uniforms, side="right")
        return np.minimum(codes, len(weights) - 1).astype(np.int64)
    cumulative = np.cumsum(weights, axis=1)
    scaled = uniforms * cumulative[:, -1]
    codes = (cumulative <= scaled[:, None]).sum(axis=1)
    return np.minimum(codes, weights.shape[1] - 1).astype(np.int64)


def poisson_from_uniform(uniforms: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Return Poisson counts for ``uniforms`` by walking the CDF upward from zero.

    The walk stops at a bound far in the upper tail. Means above 200 would make that bound
    large, so they use the normal approximation instead.
    """
    mean = np.broadcast_to(mean, uniforms.shape).astype(np.float64)
    counts = np.zeros(uniforms.shape, dtype=np.int64)
    large = mean > 200.0
    if large.any():
        approximate = mean[large] + np.sqrt(mean[large]) * ndtri(uniforms[large])
        counts[large] = np.maximum(np.rint(approximate), 0).astype(np.int64)

    active = np.flatnonzero(~large)
    probability = np.exp(-mean[active])
    cumulative = probability.copy()
    targets = uniforms[active]
    rates = mean[active]
    limit = int(np.max(rates, initial=0.0) + 12.0 * np.sqrt(np.max(rates, initial=0.0)) + 20.0)
    for k in range(1, limit + 1):
        going_on = targets > cumulative
        if not going_on.any():
            break
        active = active[going_on]
        targets = targets[going_on]
        rates = rates[going_on]
        probability = probability[going_on] * rates / k
        cumulative = cumulative[going_on] + probability
        counts[active] = k
    return counts
