"""BG/NBD purchase-count model and Gamma-Gamma spend model ("buy till you die" baseline).

BG/NBD follows Fader, Hardie and Lee, "Counting Your Customers the Easy Way: An Alternative to
the Pareto/NBD Model", Marketing Science 24(2), 2005. While alive, a customer buys at a Poisson
rate drawn from Gamma(r, alpha). After each purchase the customer drops out with a probability
drawn from Beta(a, b). Gamma-Gamma follows Fader, Hardie and Lee, "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", Journal of Marketing Research 42(4), 2005. The spend per
transaction is Gamma(p, nu) with nu drawn from Gamma(q, v) per customer.

Inputs per customer, in the names of that literature:

- ``frequency``: number of repeat purchases (purchase periods after the first) in calibration.
- ``recency``: time from the first to the last purchase; 0 when ``frequency`` is 0.
- ``T``: time from the first purchase to the end of calibration.
- ``monetary_value``: mean spend of the repeat purchases.

Time may be in any unit (days, weeks), as long as ``recency``, ``T``, ``t`` and ``horizon``
share it. ``alpha`` is then in that unit, while ``r``, ``a`` and ``b`` do not depend on it.
Arguments keep the literature's capital ``T``, hence the ``noqa: N803`` marks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from leadscore.errors import InsufficientDataError

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

MIN_CUSTOMERS = 5
"""Minimum number of customers a fit accepts: one more than the four BG/NBD parameters."""

__all__ = [
    "BgNbdParams",
    "GammaGammaParams",
    "conditional_expected_average_profit",
    "customer_lifetime_value",
    "expected_purchases",
    "expected_purchases_new",
    "fit_bgnbd",
    "fit_gamma_gamma",
    "probability_alive",
]


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """Fitted BG/NBD parameters; ``alpha`` is in the time unit of the data it was fitted on."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    """Log-likelihood at the optimum, without the penalty term."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters; ``v`` is in the currency unit of the spend data."""

    p: float
    q: float
    v: float
    log_likelihood: float = math.nan
    """Log-likelihood at the optimum, without the penalty term."""
    n_customers: int = 0
    """Customers used in the fit (frequency > 0 and positive monetary value)."""
    n_excluded: int = 0
    """Customers left out of the fit because they had no repeat purchase or no positive spend."""

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# --- input validation -------------------------------------------------------------------------


def _as_vector(name: str, values: npt.ArrayLike) -> FloatArray:
    try:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must contain numbers only; conversion to float failed: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}.")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} contains {bad.size} non-finite value(s) (NaN or infinity), first at index {bad[0]}: "
            f"{array[bad[0]]}. Drop those customers or fill the value."
        )
    return array


def _first_violation(name: str, values: FloatArray, mask: npt.NDArray[np.bool_], rule: str) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        raise ValueError(
            f"{name} {rule}; {bad.size} customer(s) violate this, first at index {bad[0]}: {values[bad[0]]}."
        )


def _validate_summary(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check and convert the per-customer (frequency, recency, T) summary."""
    x = _as_vector("frequency", frequency)
    t_x = _as_vector("recency", recency)
    age = _as_vector("T", T)
    if not x.size == t_x.size == age.size:
        raise ValueError(
            f"frequency, recency and T must have one value per customer; got lengths "
            f"{x.size}, {t_x.size} and {age.size}."
        )
    _first_violation("frequency", x, (x < 0) | (x != np.round(x)), "must be a non-negative whole number")
    _first_violation("recency", t_x, t_x < 0, "must not be negative")
    _first_violation("T", age, age < 0, "must not be negative")
    _first_violation("recency", t_x, t_x > age, "must not exceed T (the time since the first purchase)")
    _first_violation(
        "recency", t_x, (x == 0) & (t_x != 0), "must be 0 for customers with frequency 0 (no repeat purchase)"
    )
    return x, t_x, age


def _validate_horizon(name: str, t: npt.ArrayLike) -> FloatArray:
    values = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name} must be finite and not negative; got {t!r}.")
    return values


def _compress(*columns: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Collapse identical customer rows into unique rows and their counts, which speeds up fitting."""
    stacked = np.column_stack(columns)
    unique_rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return unique_rows, counts.astype(np.float64)


# --- BG/NBD -------------------------------------------------------------------------------------


def _bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, age: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return each customer's BG/NBD log-likelihood and its gradient in (r, alpha, a, b).

    The likelihood is
    L = B(a, b + x) / B(a, b) * G(r + x) / G(r) * alpha^r / (alpha + T)^(r + x)
      + [x > 0] B(a + 1, b + x - 1) / B(a, b) * G(r + x) / G(r) * alpha^r / (alpha + t_x)^(r + x).
    The gradient has shape (customers, 4).
    """
    log_common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
    )
    log_still_alive = -(r + x) * np.log(alpha + age)
    has_repeat = x > 0
    # B(a + 1, b + x - 1) / B(a, b + x) = a / (b + x - 1); only defined for x > 0, masked otherwise.
    safe_denominator = np.where(has_repeat, b + x - 1.0, 1.0)
    log_dropped_out = np.where(
        has_repeat,
        np.log(a) - np.log(safe_denominator) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    log_sum = np.logaddexp(log_still_alive, log_dropped_out)
    log_likelihood = log_common + log_sum

    # Share of the likelihood coming from the dropped-out term; the gradient mixes the two terms.
    dropped_share = np.exp(log_dropped_out - log_sum)
    alive_share = 1.0 - dropped_share
    digamma_ab = special.digamma(a + b)
    digamma_abx = special.digamma(a + b + x)
    gradient = np.column_stack(
        (
            special.digamma(r + x)
            - special.digamma(r)
            + np.log(alpha)
            - alive_share * np.log(alpha + age)
            - dropped_share * np.log(alpha + t_x),
            r / alpha - (r + x) * (alive_share / (alpha + age) + dropped_share / (alpha + t_x)),
            digamma_ab - digamma_abx + dropped_share / a,
            special.digamma(b + x)
            - special.digamma(b)
            + digamma_ab
            - digamma_abx
            - dropped_share / safe_denominator,
        )
    )
    return log_likelihood, gradient


Objective = Callable[[FloatArray], tuple[float, FloatArray]]


def _penalized_objective(
    log_likelihood: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    counts: FloatArray,
    penalty: float,
) -> Objective:
    """Build the function L-BFGS-B minimizes over log-parameters, with its gradient.

    Its value is minus the mean log-likelihood per customer plus ``penalty`` times the sum of
    the squared parameters.
    """
    total = counts.sum()

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(log_params)
        values, gradient = log_likelihood(params)
        value = -(counts @ values) / total + penalty * np.sum(params**2)
        # The chain rule for log-parameters multiplies each derivative by the parameter.
        log_gradient = -(counts @ gradient) / total * params + 2.0 * penalty * params**2
        return float(value), log_gradient

    return objective


def _maximize(
    objective: Objective, n_params: int, model: str, starts: tuple[float, ...] = (0.0, -1.0, 1.0)
) -> optimize.OptimizeResult:
    """Minimize ``objective`` over log-parameters from several starting points; keep the best."""
    best: optimize.OptimizeResult | None = None
    for start in starts:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = optimize.minimize(
                objective,
                x0=np.full(n_params, start),
                jac=True,
                method="L-BFGS-B",
                bounds=[(-20.0, 20.0)] * n_params,
                options={"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-9},
            )
        if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
            best = result
    if best is None or not best.success:
        message = "no finite objective" if best is None else best.message
        raise InsufficientDataError(
            f"{model} fit did not converge ({message}). This usually means too few repeat customers; "
            "use a longer calibration window or pass a small penalizer such as 0.001."
        )
    return best


def _check_penalizer(penalizer: float) -> float:
    if not math.isfinite(penalizer) or penalizer < 0:
        raise ValueError(f"penalizer must be a finite number >= 0; got {penalizer!r}.")
    return float(penalizer)


def fit_bgnbd(
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    penalizer: float = 0.0,
) -> BgNbdParams:
    """Fit BG/NBD by maximum likelihood with L-BFGS-B on the log of each parameter.

    The objective is the mean log-likelihood per customer minus ``penalizer`` times the sum of
    the squared parameters. This L2 penalty keeps sparse data from pushing the parameters to
    extremes, like ``penalizer_coef`` in the ``lifetimes`` package, where 0.001 to 0.1 is
    typical. The gradient is analytic. The returned log-likelihood is the unpenalized total.
    """
    penalty = _check_penalizer(penalizer)
    x, t_x, age = _validate_summary(frequency, recency, T)
    if x.size < MIN_CUSTOMERS:
        raise InsufficientDataError(f"BG/NBD needs at least {MIN_CUSTOMERS} customers; got {x.size}.")
    if not np.any(x > 0):
        raise InsufficientDataError(
            "BG/NBD needs customers with repeat purchases, but every frequency is 0; "
            "use a longer calibration window."
        )

    rows, counts = _compress(x, t_x, age)

    def log_likelihood(params: FloatArray) -> tuple[FloatArray, FloatArray]:
        r, alpha, a, b = (float(value) for value in params)
        return _bgnbd_log_likelihood(r, alpha, a, b, rows[:, 0], rows[:, 1], rows[:, 2])

    result = _maximize(_penalized_objective(log_likelihood, counts, penalty), 4, "BG/NBD")
    r, alpha, a, b = (float(value) for value in np.exp(result.x))
    total_log_likelihood = float(counts @ log_likelihood(np.exp(result.x))[0])
    params = BgNbdParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=total_log_likelihood)
    logger.info("fitted BG/NBD on %d customers: %s", x.size, params)
    return params


def probability_alive(
    params: BgNbdParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
) -> FloatArray:
    """Compute the probability that each customer is still active at the end of calibration.

    P(alive) = 1 / (1 + [x > 0] a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)).
    A customer without repeat purchases is alive with probability 1 under BG/NBD, because
    dropping out can only happen right after a purchase.
    """
    x, t_x, age = _validate_summary(frequency, recency, T)
    return 1.0 / (1.0 + _dropout_odds(params, x, t_x, age))


def _dropout_odds(params: BgNbdParams, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    """Return P(dropped out) / P(alive) given the history, computed in log space to avoid overflow."""
    has_repeat = x > 0
    safe_denominator = np.where(has_repeat, params.b + x - 1.0, 1.0)
    log_odds = (
        np.log(params.a)
        - np.log(safe_denominator)
        + (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + t_x))
    )
    return np.where(has_repeat, np.exp(np.minimum(log_odds, 700.0)), 0.0)


def expected_purchases(
    params: BgNbdParams,
    t: npt.ArrayLike,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
) -> FloatArray:
    """Compute E[Y(t) | x, t_x, T], the expected purchases in the next ``t`` time units per customer.

    Under BG/NBD it equals (a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t))^(r + x)
    * 2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))] / (1 + [x > 0] a / (b + x - 1)
    * ((alpha + T) / (alpha + t_x))^(r + x)). ``t`` may be a scalar or an array that broadcasts
    against the customers, for example shape (n_periods, 1) for several horizons at once.
    """
    x, t_x, age = _validate_summary(frequency, recency, T)
    horizon = _validate_horizon("t", t)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if a == 1.0:
        # NOTE: the closed form divides by a - 1, so a fit landing exactly on 1.0 is not handled.
        raise ValueError(
            "expected_purchases: BG/NBD parameter a is exactly 1, where the closed form is undefined."
        )

    z = horizon / (alpha + age + horizon)
    log_ratio = (r + x) * (np.log(alpha + age) - np.log(alpha + age + horizon))
    hypergeometric = special.hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - np.exp(log_ratio) * hypergeometric)
    return np.asarray(numerator / (1.0 + _dropout_odds(params, x, t_x, age)), dtype=np.float64)


def expected_purchases_new(params: BgNbdParams, t: npt.ArrayLike) -> FloatArray:
    """Compute E[X(t)], the expected purchases in ``t`` time units of a customer just acquired.

    Under BG/NBD it equals (a + b - 1) / (a - 1)
    * [1 - (alpha / (alpha + t))^r * 2F1(r, b; a + b - 1; t / (alpha + t))].
    """
    horizon = _validate_horizon("t", t)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if a == 1.0:
        raise ValueError(
            "expected_purchases_new: BG/NBD parameter a is exactly 1, where the closed form is undefined."
        )
    decay = np.exp(r * (np.log(alpha) - np.log(alpha + horizon)))
    hypergeometric = special.hyp2f1(r, b, a + b - 1.0, horizon / (alpha + horizon))
    return np.asarray((a + b - 1.0) / (a - 1.0) * (1.0 - decay * hypergeometric), dtype=np.float64)


# --- Gamma-Gamma --------------------------------------------------------------------------------


def _gamma_gamma_log_likelihood(
    p: float, q: float, v: float, x: FloatArray, mean_spend: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return each customer's log density of the mean spend over ``x`` transactions, and its gradient.

    f(zbar | p, q, v, x) = G(p x + q) / (G(p x) G(q)) * v^q * zbar^(p x - 1) * x^(p x)
                           / (v + x zbar)^(p x + q)
    The gradient in (p, q, v) has shape (customers, 3).
    """
    px = p * x
    log_total = np.log(v + x * mean_spend)
    log_likelihood = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(mean_spend)
        + px * np.log(x)
        - (px + q) * log_total
    )
    digamma_total = special.digamma(px + q)
    gradient = np.column_stack(
        (
            x * (digamma_total - special.digamma(px) + np.log(mean_spend) + np.log(x) - log_total),
            digamma_total - special.digamma(q) + np.log(v) - log_total,
            q / v - (px + q) / (v + x * mean_spend),
        )
    )
    return log_likelihood, gradient


def _split_spenders(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, int, int]:
    """Keep customers with a repeat purchase and positive mean spend; count the rest by reason."""
    x = _as_vector("frequency", frequency)
    spend = _as_vector("monetary_value", monetary_value)
    if x.size != spend.size:
        raise ValueError(
            "frequency and monetary_value must have one value per customer; "
            f"got lengths {x.size} and {spend.size}."
        )
    _first_violation("frequency", x, (x < 0) | (x != np.round(x)), "must be a non-negative whole number")
    no_repeat = x == 0
    no_spend = (x > 0) & (spend <= 0)
    keep = ~no_repeat & ~no_spend
    return x[keep], spend[keep], int(no_repeat.sum()), int(no_spend.sum())


def fit_gamma_gamma(
    frequency: npt.ArrayLike, monetary_value: npt.ArrayLike, penalizer: float = 0.0
) -> GammaGammaParams:
    """Fit the Gamma-Gamma spend model by maximum likelihood with L-BFGS-B on log-parameters.

    Only customers with ``frequency > 0`` and ``monetary_value > 0`` carry information on
    spend. The others are left out, counted in ``n_excluded`` and logged by reason. The model
    assumes spend is independent of frequency, so the Pearson correlation between them among
    the customers used is logged to let the caller judge that assumption.
    """
    penalty = _check_penalizer(penalizer)
    x, spend, n_no_repeat, n_no_spend = _split_spenders(frequency, monetary_value)
    if n_no_repeat or n_no_spend:
        logger.info(
            "Gamma-Gamma leaves out %d customers without repeat purchases and %d with repeat purchases "
            "but no positive spend",
            n_no_repeat,
            n_no_spend,
        )
    if x.size < MIN_CUSTOMERS:
        raise InsufficientDataError(
            f"Gamma-Gamma needs at least {MIN_CUSTOMERS} customers with frequency > 0 and positive "
            f"monetary_value; got {x.size} ({n_no_repeat} without repeat purchases, "
            f"{n_no_spend} without spend)."
        )
    if np.all(spend == spend[0]) and np.all(x == x[0]):
        raise InsufficientDataError(
            "Gamma-Gamma cannot be fitted because every customer has the same frequency and monetary_value."
        )

    rows, counts = _compress(x, spend)

    def log_likelihood(params: FloatArray) -> tuple[FloatArray, FloatArray]:
        p, q, v = (float(value) for value in params)
        return _gamma_gamma_log_likelihood(p, q, v, rows[:, 0], rows[:, 1])

    result = _maximize(_penalized_objective(log_likelihood, counts, penalty), 3, "Gamma-Gamma")
    p, q, v = (float(value) for value in np.exp(result.x))
    params = GammaGammaParams(
        p=p,
        q=q,
        v=v,
        log_likelihood=float(counts @ log_likelihood(np.exp(result.x))[0]),
        n_customers=int(x.size),
        n_excluded=n_no_repeat + n_no_spend,
    )
    correlation = float(np.corrcoef(x, spend)[0, 1]) if x.size > 1 and np.ptp(x) > 0 else math.nan
    logger.info(
        "fitted Gamma-Gamma on %d customers: p=%.4g q=%.4g v=%.4g; frequency-spend correlation %.3f",
        x.size,
        p,
        q,
        v,
        correlation,
    )
    return params


def conditional_expected_average_profit(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary_value: npt.ArrayLike
) -> FloatArray:
    """Compute E[Z | x, zbar], the expected spend per future transaction of each customer.

    E = (v + x zbar) p / (p x + q - 1): a weighted mean of the population mean v p / (q - 1)
    and the customer's own mean spend, with more weight on the customer's own mean the more
    transactions it rests on. Customers with ``frequency`` 0 get the population mean, whatever
    their ``monetary_value``. A negative ``monetary_value`` (net refunds) counts as 0, because
    the model's spend is positive. Requires p x + q > 1 for every customer, so q > 1 when any
    customer has ``frequency`` 0.
    """
    x = _as_vector("frequency", frequency)
    spend = _as_vector("monetary_value", monetary_value)
    if x.size != spend.size:
        raise ValueError(
            "frequency and monetary_value must have one value per customer; "
            f"got lengths {x.size} and {spend.size}."
        )
    _first_violation("frequency", x, (x < 0) | (x != np.round(x)), "must be a non-negative whole number")
    denominator = params.p * x + params.q - 1.0
    _first_violation(
        "frequency",
        x,
        denominator <= 0,
        f"gives p x + q - 1 <= 0 with q={params.q:.4g}, so the expected spend is undefined; "
        "refit Gamma-Gamma on more repeat customers",
    )
    own_spend = np.where(x > 0, np.maximum(spend, 0.0), 0.0)
    return np.asarray((params.v + x * own_spend) * params.p / denominator, dtype=np.float64)


def _period_ends(horizon: float) -> FloatArray:
    """Return 1, 2, ... up to ``horizon``, ending with ``horizon`` itself when it is fractional."""
    ends = np.arange(1.0, math.floor(horizon) + 1.0)
    if ends.size == 0 or ends[-1] < horizon:
        ends = np.append(ends, horizon)
    return ends


def customer_lifetime_value(
    bgnbd: BgNbdParams,
    gg: GammaGammaParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    monetary_value: npt.ArrayLike,
    horizon: float,
    discount_rate: float = 0.0,
) -> FloatArray:
    """Compute each customer's expected revenue over the next ``horizon`` time units.

    The horizon is cut into periods of one time unit (the unit of ``recency`` and ``T``, for
    example weeks), with a shorter last period when ``horizon`` is fractional. Each period
    contributes its expected purchase count from BG/NBD times the expected spend per purchase
    from Gamma-Gamma, discounted by ``(1 + discount_rate) ** -period_end``. So
    ``discount_rate`` is the rate per time unit: a 10 % yearly rate is about 0.0018 per week.
    Without discounting this equals ``expected_purchases(horizon) * spend``.
    """
    if not math.isfinite(horizon) or horizon <= 0:
        raise ValueError(f"horizon must be a positive number of time units; got {horizon!r}.")
    if not math.isfinite(discount_rate) or discount_rate < 0:
        raise ValueError(f"discount_rate must be a finite rate per time unit >= 0; got {discount_rate!r}.")

    spend = conditional_expected_average_profit(gg, frequency, monetary_value)
    ends = _period_ends(float(horizon))
    cumulative = expected_purchases(bgnbd, ends[:, np.newaxis], frequency, recency, T)
    per_period = np.diff(cumulative, axis=0, prepend=0.0)
    discount = (1.0 + discount_rate) ** -ends
    return np.asarray(spend * (discount @ per_period), dtype=np.float64)
