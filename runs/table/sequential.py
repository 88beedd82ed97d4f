"""Seeds until each claim resolves (``--seeds auto --max-seeds N``): the group-sequential design
(boundaries, futility), each claim-metric pair's decision after a round, the rows the next round
trains, and planning (power, seeds needed, expected seed-runs against a fixed N).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, NamedTuple, Optional, Sequence

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from ablations import METRICS, AblationTable, Claim, Metric

ALPHA = 0.05            # two-sided, per claim-metric pair, over all looks together
POWER = 0.8             # what ``seeds_needed`` sizes max-seeds for at the paper's step
# First look at the fewest seeds a row that show a spread: it can seldom reproduce, but it can
# call a pair futile that max-seeds cannot resolve, and its exact t quantile costs no alpha.
MIN_SEEDS = 2
DEFAULT_MAX_SEEDS = 5   # --max-seeds when not given (run_table and plan)
FUTILITY_CP = 0.1       # futile below this conditional power (seeds saved vs power lost)
T_EXTRA_SEEDS = 1       # seeds per row added to the known-SD size for estimating the SD
REPRODUCED, CONTRADICTED = 'reproduced', 'contradicted'
MORE_SEEDS, FUTILE = 'more seeds', 'futile'
DECISIONS = (MORE_SEEDS, REPRODUCED, CONTRADICTED, FUTILE)   # ``replay``'s codes index this
OBSERVED, PRIOR = 'observed', 'prior'    # the noise model of a look, as in reports.stats

# What the report prints about the design; the reasons are in the comments beside them.
# One seed a row a round: each seed is a full training run, and a coarser round only overshoots
# the look at which a pair would have stopped. Looks need a spread, hence two seeds first.
ROUNDS = (f'the first round trains {MIN_SEEDS} seeds of each row in an open claim, each later '
          f'round one more seed; after each round every claim-metric pair looks at the first n '
          f'seeds of both its rows (pooled two-sample t, df 2n - 2)')

# O'Brien-Fleming-type: early looks spend almost nothing, so the last boundary stays near the
# fixed-n one and max-seeds keeps nearly its fixed-n power; Pocock-type stops earlier but
# reproduces fewer claims at the same max-seeds.
SPENDING = ("Lan-DeMets O'Brien-Fleming-type alpha spending, two-sided and symmetric: "
            "alpha(t) = 4 (1 - Phi(z_{1 - alpha/4} / sqrt(t))) at information fraction "
            "t = n / max-seeds")
# Why not convert the z boundaries to t quantiles look by look: the looks' t statistics share a
# noisy SD, and the converted design spends more than alpha when rows have few seeds.
VARIANCE = ('SD estimated from the seeds (pooled, df 2n - 2): boundaries on the t scale spend '
            'alpha exactly on the null law of the pooled t sequence, which is free of the mean '
            'and SD and is simulated once per design (fixed seed, calibrated a margin below '
            'alpha); the first look\'s boundary is the exact Student quantile. Seeds that agree '
            'exactly: the metric\'s prior SD as known, z boundaries')
# The observed SD, so a metric noisier than its prior stops sooner; the seeds' direction, so a
# reversed claim can still be contradicted; non-binding, so alpha never rests on it.
FUTILITY = (f'non-binding (alpha is spent as if it never stopped a pair): futile when the '
            f'conditional power to cross the last boundary, if the true step is the paper\'s '
            f'size in the direction the seeds point and the SD is the observed one, is below '
            f'{FUTILITY_CP}; a pair still open at max-seeds is futile')
# Per pair, not Benjamini-Hochberg: each pair is reported as its own verdict, as the fixed-n
# report does, and BH across pairs that stop at different looks would let one pair's seeds move
# another's verdict.
MULTIPLICITY = (f'per claim-metric pair: alpha {ALPHA} each, as the fixed-n report, so a verdict '
                f'means the same under --seeds auto and --seeds N')

# How finely the recursion and the calibration resolve the boundaries (numerical, not design).
_GRID = 201                   # points per open interval of the recursion (odd)
_CALIBRATION_PATHS = 2 ** 20  # null paths; the level is then known to sqrt(alpha / paths)
_CALIBRATION_MARGIN = 2       # Monte Carlo SEs the calibration keeps below alpha
_CALIBRATION_SEED = 20250


def spent(t, alpha: float = ALPHA):
    """Cumulative alpha the design may have spent at information fraction ``t`` (0 < t <= 1)."""
    t = np.asarray(t, dtype=float)
    return 4 * special.ndtr(-sps.norm.isf(alpha / 4) / np.sqrt(t))


# --- the recursion: the B-value B_k = Z_k sqrt(t_k) is Brownian motion with drift ``eta``
# (eta = the z statistic's mean at t = 1); between looks it moves N(eta dt, dt). The sub-density
# of paths still open is carried on a grid of each open interval (Simpson weights).

def _grid(intervals) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on each interval."""
    simpson = np.ones(_GRID)
    simpson[1:-1:2], simpson[2:-1:2] = 4, 2
    points, weights = [], []
    for lo, hi in intervals:
        points.append(np.linspace(lo, hi, _GRID))
        weights.append(simpson * (hi - lo) / (3 * (_GRID - 1)))
    return np.concatenate(points), np.concatenate(weights)


def _exits(b, mass, dt, eta, u) -> tuple[float, float]:
    """P(B above ``u``), P(B below ``-u``) at the next look, from open paths ``mass`` at ``b``."""
    mean = b + eta * dt
    sd = math.sqrt(dt)
    return (float(mass @ special.ndtr((mean - u) / sd)),
            float(mass @ special.ndtr((-u - mean) / sd)))


def _carry(b, mass, dt, eta, points):
    """Density at ``points`` of the next look's B, from open paths ``mass`` at ``b``."""
    sd = math.sqrt(dt)
    return mass @ (np.exp(-0.5 * ((points[None, :] - b[:, None] - eta * dt) / sd) ** 2)
                   / (sd * math.sqrt(2 * math.pi)))


def _open_intervals(u: float, inner: float):
    """The open region ``inner < |B| < u`` (``inner`` <= 0: no inner region)."""
    if inner <= 0:
        return [(-u, u)]
    if inner >= u:
        return []
    return [(-u, -inner), (inner, u)]


def z_bounds(fractions: Sequence[float], alpha: float = ALPHA) -> np.ndarray:
    """Two-sided z boundaries at looks with these information fractions (increasing, the last
    1): under no step, the chance of first crossing +-c_k at look k is the spending increment."""
    fractions = tuple(float(t) for t in fractions)
    return _z_bounds(fractions, alpha).copy()


@lru_cache(maxsize=64)
def _z_bounds(fractions: tuple[float, ...], alpha: float) -> np.ndarray:
    bounds, b, mass, t_prev = [], np.zeros(1), np.ones(1), 0.0
    for t in fractions:
        target = float(spent(t, alpha) - (spent(t_prev, alpha) if t_prev else 0.0))
        dt = t - t_prev

        def excess(c):
            return sum(_exits(b, mass, dt, 0.0, c * math.sqrt(t))) - target
        c = optimize.brentq(excess, 0.1, 60.0, xtol=1e-10) if target > 0 else math.inf
        bounds.append(c)
        points, weights = _grid(_open_intervals(c * math.sqrt(t), 0.0))
        mass = weights * _carry(b, mass, dt, 0.0, points)
        b, t_prev = points, t
    return np.array(bounds)


# --- the design of one max-seeds ---

@dataclass(frozen=True)
class Design:
    """Looks and boundaries of ``--max-seeds max_seeds``: a pair is decided at look k when its
    |t| reaches ``t[k]`` (|z| reaches ``z[k]`` when the prior SD stands in)."""
    max_seeds: int
    alpha: float
    seeds: tuple[int, ...]       # seeds per row at each look
    fractions: tuple[float, ...]
    z: tuple[float, ...]
    t: tuple[float, ...]


def _fractions(max_seeds: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Seeds per row at each look, and the looks' information fractions."""
    if max_seeds < MIN_SEEDS:
        raise ValueError(f'--max-seeds {max_seeds}: the first look needs {MIN_SEEDS} seeds a row')
    seeds = tuple(range(MIN_SEEDS, max_seeds + 1))
    return seeds, tuple(n / max_seeds for n in seeds)


@lru_cache(maxsize=32)
def design(max_seeds: int, alpha: float = ALPHA) -> Design:
    """The design of ``--max-seeds max_seeds``: a look after every round."""
    seeds, fractions = _fractions(max_seeds)
    return Design(max_seeds, alpha, seeds, fractions,
                  tuple(_z_bounds(fractions, alpha)), _t_bounds(seeds, fractions, alpha))


def _pooled_t(sum_b, sum_w, sq_b, sq_w, n):
    """Pooled two-sample t, and the pooled SD, from running sums of n seeds per row."""
    mean_b, mean_w = sum_b / n, sum_w / n
    ss = np.maximum(sq_b - sum_b * mean_b, 0) + np.maximum(sq_w - sum_w * mean_w, 0)
    sd = np.sqrt(ss / (2 * n - 2))
    with np.errstate(divide='ignore', invalid='ignore'):
        return (mean_b - mean_w) / (sd * math.sqrt(2 / n)), sd


def _t_bounds(seeds, fractions, alpha) -> tuple[float, ...]:
    """t boundaries that spend ``spent`` on the null law of the pooled t sequence. The first
    look's t is exactly Student's; later ones are calibrated on simulated null paths (the law
    has no closed form, and being free of mean and SD it is the same for every metric)."""
    rng = np.random.default_rng(_CALIBRATION_SEED)
    paths = _CALIBRATION_PATHS
    sums = np.zeros((4, paths))          # sum and sum of squares of each row
    open_ = np.ones(paths, bool)
    bounds, drawn = [], 0
    for n, t in zip(seeds, fractions):
        for _ in range(n - drawn):
            x = rng.standard_normal((2, paths))
            sums[:2] += x
            sums[2:] += x * x
        drawn = n
        stat = np.abs(_pooled_t(sums[0], sums[1], sums[2], sums[3], n)[0])
        if n == seeds[0]:
            c = float(sps.t.isf(spent(t, alpha) / 2, 2 * n - 2))
        else:
            # Cumulative target, less the margin, so that the true level stays at most alpha
            # with high confidence; a look whose share is under one path leaves it to the next.
            target = float(spent(t, alpha))
            target -= _CALIBRATION_MARGIN * math.sqrt(target * (1 - target) / paths)
            m = int(round(target * paths)) - int((~open_).sum())
            live = stat[open_]
            if m <= 0:
                c = math.inf
            elif m >= live.size:
                c = 0.0
            else:
                top = -np.partition(-live, [m - 1, m])[[m - 1, m]]
                c = float(top.mean())
        bounds.append(c)
        open_ &= stat < c
    return tuple(bounds)


def futility_cp(stat, sd, step: Optional[float], fraction: float, last_z: float, max_seeds: int):
    """Conditional power to cross ``last_z`` at max-seeds if the true step is ``|step|`` in the
    direction of ``stat`` and the per-seed SD is ``sd`` (arrays broadcast; B-value formula)."""
    if step is None or fraction >= 1:
        return np.full(np.shape(stat), np.nan)
    with np.errstate(divide='ignore', invalid='ignore'):
        eta = abs(step) / (np.asarray(sd) * math.sqrt(2 / max_seeds))
        return special.ndtr((np.abs(stat) * math.sqrt(fraction) + eta * (1 - fraction) - last_z)
                            / math.sqrt(1 - fraction))


# --- decisions ---

class Looks(NamedTuple):
    """``replay``'s answer, one entry per pair: of the deciding look, or of the latest while
    the pair is open (n 0 and NaN before the first look)."""
    code: np.ndarray    # index into DECISIONS
    n: np.ndarray       # seeds per row
    stat: np.ndarray    # t, or z with the prior SD
    bound: np.ndarray   # |stat| at or beyond it decides
    sd: np.ndarray      # per-seed SD used: pooled, or the prior
    prior: np.ndarray   # True where the prior SD stood in
    cp: np.ndarray      # conditional power of the futility rule (NaN where it does not apply)


def replay(better, worse, max_seeds: int, step: Optional[float], prior_sd: Optional[float],
           alpha: float = ALPHA) -> Looks:
    """Decisions of many pairs at once: ``better`` and ``worse`` are (pairs, seeds) arrays of
    per-seed values in seed order; look k takes the first n_k seeds of both rows."""
    better, worse = np.atleast_2d(better).astype(float), np.atleast_2d(worse).astype(float)
    # One shift for both rows keeps the step and lets sums of squares keep their digits.
    shift = better[:, :1].copy()
    better, worse = better - shift, worse - shift
    d = design(max_seeds, alpha)
    count = better.shape[0]
    out = Looks(np.zeros(count, int), np.zeros(count, int),
                *(np.full(count, np.nan) for _ in range(3)), np.zeros(count, bool),
                np.full(count, np.nan))
    seeds = min(better.shape[1], worse.shape[1], max_seeds)
    for k, n in enumerate(d.seeds):
        if n > seeds:
            break
        open_ = out.code == 0
        b, w = better[:, :n], worse[:, :n]
        stat, sd = _pooled_t(b.sum(1), w.sum(1), (b * b).sum(1), (w * w).sum(1), n)
        bound = np.full(count, d.t[k])
        prior = ~(sd > 0)
        if prior.any():
            # Seeds that agree exactly say nothing about noise: the prior SD stands in (z).
            sd[prior] = math.nan if prior_sd is None else prior_sd
            stat[prior] = (b[prior].mean(1) - w[prior].mean(1)) / (sd[prior] * math.sqrt(2 / n))
            bound[prior] = d.z[k]
        cp = futility_cp(stat, sd, step, d.fractions[k], d.z[-1], max_seeds)
        up, down = open_ & (stat >= bound), open_ & (stat <= -bound)
        futile = open_ & ~up & ~down & ((n == max_seeds) | (cp < FUTILITY_CP))
        out.code[up], out.code[down], out.code[futile] = 1, 2, 3
        out.n[open_] = n
        for field, value in zip(Looks._fields[2:], (stat, bound, sd, prior, cp)):
            getattr(out, field)[open_] = value[open_]
    return out


@dataclass(frozen=True)
class Verdict:
    """One claim-metric pair after the latest round."""
    decision: str       # one of DECISIONS
    n: int              # seeds per row at the deciding look (the latest while open; 0: none)
    diff: float         # mean(better) - mean(worse) over those seeds
    sd: float           # per-seed SD the look used (pooled, or the prior)
    noise: str          # OBSERVED or PRIOR
    stat: float         # t (z with the prior SD)
    bound: float        # |stat| at or beyond it decides
    conditional_power: float  # of the futility rule; NaN at the last look or without a step


def decide(better: Sequence[float], worse: Sequence[float], metric: Metric, max_seeds: int,
           step: Optional[float], alpha: float = ALPHA) -> Verdict:
    """The pair's verdict from its rows' per-seed values in seed order (paper units); ``step``
    is the paper's published ``better - worse`` (None: unpublished, no early futility). The
    looks are replayed from the first seeds on, so a decision is final: seeds trained later for
    another pair do not move it, and the caller keeps no state between rounds."""
    if min(len(better), len(worse)) < MIN_SEEDS:
        return Verdict(MORE_SEEDS, 0, *[math.nan] * 2, '', *[math.nan] * 3)
    look = Looks(*(a[0] for a in replay([list(better)], [list(worse)], max_seeds, step,
                                        metric.prior_sd, alpha)))
    n = int(look.n)
    return Verdict(DECISIONS[look.code], n, float(np.mean(better[:n]) - np.mean(worse[:n])),
                   float(look.sd), PRIOR if look.prior else OBSERVED, float(look.stat),
                   float(look.bound), float(look.cp))


# --- a table's pairs, rounds and rows ---

@dataclass(frozen=True)
class Pair:
    """A claim on one metric, with the paper's step ``better - worse`` (None: unpublished)."""
    claim: Claim
    metric: str
    step: Optional[float]


def pairs(table: AblationTable) -> tuple[Pair, ...]:
    """Every claim-metric pair of the table (a claim without metrics covers all the table's)."""
    out = []
    for claim in table.claims:
        better, worse = table.row(claim.better), table.row(claim.worse)
        for metric in claim.metrics or table.metrics:
            b, w = better.published.get(metric), worse.published.get(metric)
            out.append(Pair(claim, metric, None if b is None or w is None else b - w))
    return tuple(out)


def pair_alpha(table: AblationTable) -> dict[Pair, float]:
    """Each pair's two-sided alpha (see MULTIPLICITY)."""
    return {pair: ALPHA for pair in pairs(table)}


def decide_table(table: AblationTable, values: Mapping[str, Mapping[str, Sequence[float]]],
                 max_seeds: int) -> dict[Pair, Verdict]:
    """Every pair's verdict; ``values[row slug][metric]`` are per-seed values in seed order."""
    alphas = pair_alpha(table)
    out = {}
    for pair in pairs(table):
        b = values.get(pair.claim.better, {}).get(pair.metric, [])
        w = values.get(pair.claim.worse, {}).get(pair.metric, [])
        out[pair] = decide(b, w, METRICS[pair.metric], max_seeds, pair.step, alphas[pair])
    return out


def rows_to_train(table: AblationTable, decisions: Mapping[Pair, str]
                  ) -> dict[str, tuple[str, ...]]:
    """Row slug -> the tasks (table order) of which the next round trains one more seed: those
    of the pairs still open (``MORE_SEEDS``, or absent: not looked at yet) on that row. Rows in
    no claim never appear: the design has nothing to decide for them. ``decisions`` maps each
    pair to its ``Verdict.decision``."""
    needed: dict[str, set] = {}
    for pair in pairs(table):
        if decisions.get(pair, MORE_SEEDS) == MORE_SEEDS:
            for slug in (pair.claim.better, pair.claim.worse):
                needed.setdefault(slug, set()).add(METRICS[pair.metric].task)
    return {slug: tuple(t for t in table.tasks if t in tasks) for slug, tasks in needed.items()}


# --- planning: power, seeds, expected seed-runs ---

def parse_seeds(seeds: str, max_seeds) -> tuple[int, Optional[int]]:
    """``--seeds N`` or ``--seeds auto --max-seeds M`` (``tools/run_table.py``, ``tools/plan.py``):
    (N, None), or (the first round's seeds, M). A bad value: ValueError, one line."""
    if seeds == 'auto':
        if not str(max_seeds).isdigit() or int(max_seeds) < MIN_SEEDS:
            raise ValueError(f'--max-seeds must be at least {MIN_SEEDS} (the first look), '
                             f'got {max_seeds}')
        return MIN_SEEDS, int(max_seeds)
    if seeds.isdigit() and int(seeds) >= 1:
        return int(seeds), None
    raise ValueError(f'--seeds {seeds!r} must be a whole number >= 1 or auto')


def design_power(step: float, sd: float, max_seeds: int) -> float:
    """Chance of ``reproduced`` when the true step is ``step`` and the per-seed SD ``sd`` is
    known (z boundaries and the futility rule at that SD), by the recursion."""
    fractions = _fractions(max_seeds)[1]
    z = _z_bounds(fractions, ALPHA)
    eta = step / (sd * math.sqrt(2 / max_seeds))
    b, mass, t_prev, power = np.zeros(1), np.ones(1), 0.0, 0.0
    for k, t in enumerate(fractions):
        dt, u = t - t_prev, z[k] * math.sqrt(t)
        power += _exits(b, mass, dt, eta, u)[0]
        if k == len(fractions) - 1:
            break
        # Futile below the |B| at which the conditional power is FUTILITY_CP.
        inner = (z[-1] - abs(eta) * (1 - t)
                 + math.sqrt(1 - t) * sps.norm.ppf(FUTILITY_CP))
        points, weights = _grid(_open_intervals(u, inner))
        if not points.size:
            break
        mass = weights * _carry(b, mass, dt, eta, points)
        b, t_prev = points, t
    return power


def seeds_needed(step: float, sd: float, target: float = POWER, limit: int = 200
                 ) -> Optional[int]:
    """The max-seeds at which the design reproduces a true ``step`` with chance ``target``:
    the known-SD size plus T_EXTRA_SEEDS for estimating the SD; None beyond ``limit``."""
    if not step or not sd > 0:
        return None
    # Start at the one-sided level alpha/2 z-test's size: by Neyman-Pearson no design whose
    # upward crossings have null chance alpha/2 reproduces with more power at fewer seeds.
    z = sps.norm.isf(ALPHA / 2) + sps.norm.ppf(target)
    for n in range(max(MIN_SEEDS, math.ceil(2 * (z * sd / step) ** 2)), limit + 1):
        if design_power(abs(step), sd, n) >= target:
            return n + T_EXTRA_SEEDS
    return None


def seed_runs_per_run(table: AblationTable, values: Mapping[tuple[str, str], np.ndarray],
                      max_seeds: int) -> dict[tuple[str, str], np.ndarray]:
    """Seeds each (row slug, task) of the table's claim rows trains under the sequential design,
    per trial. ``values[row slug, metric]`` are (trials, max_seeds) per-seed values; a pair
    without values (no published step to plant) is counted open to max-seeds. A row trains a
    task while a pair on it is open, so its seeds are the latest look of those pairs."""
    runs: dict[tuple[str, str], np.ndarray] = {}
    for pair in pairs(table):
        better, worse = (pair.claim.better, pair.metric), (pair.claim.worse, pair.metric)
        n = max_seeds if better not in values or worse not in values else \
            replay(values[better], values[worse], max_seeds, pair.step,
                   METRICS[pair.metric].prior_sd).n
        task = METRICS[pair.metric].task
        for slug in (pair.claim.better, pair.claim.worse):
            runs[slug, task] = np.maximum(runs.get((slug, task), 0), n)
    return runs


def seed_runs(table: AblationTable, values: Mapping[tuple[str, str], np.ndarray],
              max_seeds: int) -> tuple[np.ndarray, int]:
    """Seed-runs (one row, one task, one seed) of the table's claim rows under the sequential
    design, per trial, and under a fixed ``max_seeds`` (see seed_runs_per_run)."""
    runs = seed_runs_per_run(table, values, max_seeds)
    return sum(runs.values()), len(runs) * max_seeds


# ``expected_seed_runs``: a fixed-seed simulation; at 20,000 trials the Monte Carlo SE of Table
# 4's expected seed-runs at max-seeds 5 is about 0.03 of ~50.
EXPECTED_TRIALS = 20_000
EXPECTED_SEED = 20_251


def expected_seed_runs(table: AblationTable, max_seeds: int, trials: int = EXPECTED_TRIALS,
                       seed: int = EXPECTED_SEED) -> dict[tuple[str, str], float]:
    """Expected seeds of each (row slug, task) under ``--seeds auto --max-seeds max_seeds`` when
    the paper's numbers are the true means and each metric's prior SD the seed spread (planted,
    ``trials`` trials from ``seed``); a pair without a published step is counted open to
    max-seeds. A row's det/seg seed starts from its cls run of that seed, which the round
    trains with it (``reports.seed_rounds``): its cls seeds are at least its other tasks'."""
    values = planted(table, max_seeds, trials, np.random.default_rng(seed),
                     skip_unpublished=True)
    runs = seed_runs_per_run(table, values, max_seeds)
    if 'cls' in table.tasks:
        for (slug, task), n in list(runs.items()):
            if task != 'cls':
                runs[slug, 'cls'] = np.maximum(runs.get((slug, 'cls'), 0), n)
    return {key: float(np.mean(n)) for key, n in runs.items()}


def planted(table: AblationTable, max_seeds: int, trials: int, rng: np.random.Generator,
            skip_unpublished: bool = False) -> dict[tuple[str, str], np.ndarray]:
    """Per-seed values of the claim rows drawn with the paper's numbers as true means and each
    metric's prior SD, metrics independent: ``values[row slug, metric]``, (trials, max_seeds).
    A pair without a published step: an error, or left out with ``skip_unpublished``."""
    out = {}
    for pair in pairs(table):
        if pair.step is None:
            if skip_unpublished:
                continue
            raise ValueError(f'{pair.claim.text} ({pair.metric}): no published step to plant')
        for slug in (pair.claim.better, pair.claim.worse):
            if (slug, pair.metric) not in out:
                out[slug, pair.metric] = rng.normal(table.row(slug).published[pair.metric],
                                                    METRICS[pair.metric].prior_sd,
                                                    (trials, max_seeds))
    return out
