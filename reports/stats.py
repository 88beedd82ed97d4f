"""Is a step between two rows larger than seed noise? Intervals, p-values, verdicts, seeds needed.

A step is ``mean(better) - mean(worse)`` over the seeds that gave a number. Its 95% interval
and two-sided p-value come from, in this order of preference:

- ``observed``: both rows have two or more seeds: Welch's t (``scipy.stats.ttest_ind`` with
  ``equal_var=False``), no assumption that the rows are equally noisy;
- ``observed, one row``: only one row has two or more seeds: its sample SD stands for both
  rows (equal noise assumed), t with that row's n - 1 degrees of freedom;
- ``prior``: no row has two seeds, or the seeds we have agree exactly (a zero spread says
  nothing about noise): the metric's documented prior SD (``Metric.prior_sd``, with its
  source) taken as known, normal interval. A metric without a prior gets no interval.

Verdict: ``reproduced`` when the interval lies above 0, ``contradicted`` below 0, else
``inconclusive``. Seeds needed: the smallest n per row for which a two-sided two-sample t-test
at alpha 0.05 detects the paper's published step with power 0.8, given the SD above (pooled
when observed), from the noncentral t distribution.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

from scipy import stats as sps

from ablations import Metric

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000   # beyond this "seeds needed" is reported as more than it
REPRODUCED, CONTRADICTED, INCONCLUSIVE = 'reproduced', 'contradicted', 'inconclusive'
OBSERVED, OBSERVED_ONE_ROW, PRIOR = 'observed', 'observed, one row', 'prior'


@dataclass(frozen=True)
class Step:
    """``better - worse`` for one metric, with the noise model the interval rests on."""
    n_better: int
    n_worse: int
    diff: float               # difference of means
    median_diff: float        # difference of medians
    low: float                # 95% interval; NaN when no noise level is known
    high: float
    p: float                  # two-sided, against "no step"; NaN when no noise level is known
    sd: float                 # the per-seed SD used (pooled over the rows when observed)
    noise: str                # OBSERVED, OBSERVED_ONE_ROW, PRIOR, or '' (none known)
    df: float = math.inf      # degrees of freedom of the t interval (inf: normal)

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return REPRODUCED
        if self.high < 0:
            return CONTRADICTED
        return INCONCLUSIVE


def sample_sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) >= 2 else math.nan


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """SD pooled over the groups with two or more values (NaN when none has)."""
    groups = [g for g in groups if len(g) >= 2]
    dof = sum(len(g) - 1 for g in groups)
    if not dof:
        return math.nan
    return math.sqrt(sum(statistics.variance(g) * (len(g) - 1) for g in groups) / dof)


def _t_step(diff: float, se: float, df: float) -> tuple[float, float, float]:
    """Interval and two-sided p-value of ``diff`` with standard error ``se`` on ``df``."""
    dist = sps.norm if math.isinf(df) else sps.t(df)
    half = dist.ppf(0.5 + CONFIDENCE / 2) * se
    p = float(2 * dist.sf(abs(diff) / se))
    return diff - half, diff + half, p


def compare(better: Sequence[float], worse: Sequence[float], metric: Metric) -> Step:
    """The step ``better - worse`` (both non-empty lists of per-seed values, paper units)."""
    if not better or not worse:
        raise ValueError('compare needs at least one value per row')
    nb, nw = len(better), len(worse)
    diff = statistics.fmean(better) - statistics.fmean(worse)
    common = dict(n_better=nb, n_worse=nw, diff=diff,
                  median_diff=statistics.median(better) - statistics.median(worse))
    sb, sw = sample_sd(better), sample_sd(worse)
    if nb >= 2 and nw >= 2 and (sb > 0 or sw > 0):
        test = sps.ttest_ind(better, worse, equal_var=False)
        interval = test.confidence_interval(CONFIDENCE)
        return Step(**common, low=float(interval.low), high=float(interval.high),
                    p=float(test.pvalue), sd=pooled_sd([better, worse]), noise=OBSERVED,
                    df=float(test.df))
    seeded = [(s, n) for s, n in ((sb, nb), (sw, nw)) if n >= 2 and s > 0]
    if seeded:
        sd, n = seeded[0]
        se = sd * math.sqrt(1 / nb + 1 / nw)
        low, high, p = _t_step(diff, se, n - 1)
        return Step(**common, low=low, high=high, p=p, sd=sd, noise=OBSERVED_ONE_ROW, df=n - 1)
    if metric.prior_sd is None:
        return Step(**common, low=math.nan, high=math.nan, p=math.nan, sd=math.nan, noise='')
    se = metric.prior_sd * math.sqrt(1 / nb + 1 / nw)
    low, high, p = _t_step(diff, se, math.inf)
    return Step(**common, low=low, high=high, p=p, sd=metric.prior_sd, noise=PRIOR)


def power(step: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided two-sample t-test with ``n`` seeds per row to detect ``step``. With
    one seed per row the report has no spread and takes ``sd`` as known (``prior``): the power
    of that normal test."""
    ncp = abs(step) / (sd * math.sqrt(2 / n))
    if n < 2:
        crit = sps.norm.isf(alpha / 2)
        return float(sps.norm.sf(crit - ncp) + sps.norm.cdf(-crit - ncp))
    df = 2 * n - 2
    crit = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp))


def seeds_needed(step: float, sd: float, target: float = POWER, alpha: float = ALPHA
                 ) -> Optional[int]:
    """Seeds per row to detect ``step`` given per-seed ``sd``; None beyond ``MAX_SEEDS`` (or
    for a zero step). Starts at the normal approximation, which never overshoots the t answer."""
    if not step or math.isnan(step) or not sd > 0:
        return None
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(target)
    n = max(2, math.ceil(2 * (z * sd / step) ** 2))
    while n <= MAX_SEEDS:
        if power(step, sd, n, alpha) >= target:
            return n
        n += 1
    return None
