"""The sequential design of ``--seeds auto``: boundaries against an independent multivariate
normal computation, error rate and power on planted normal seeds, seed-runs saved on Table 4,
and the round loop (decisions final, only open pairs' rows train).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from ablations import METRICS, get_table
from runs.table import sequential as seq

TABLE4 = get_table('table4')


# --- an oracle of our own: group-sequential crossing probabilities from scipy's multivariate
# normal of the look statistics (correlation sqrt(t_i / t_j)), not from the module's recursion.

def p_inside(bounds, fractions) -> float:
    """P(|Z_j| < c_j at every look j) for z statistics at these information fractions."""
    t = np.asarray(fractions, float)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = np.asarray(bounds, float)
    if c.size == 1:
        return float(sps.norm.cdf(c[0]) - sps.norm.cdf(-c[0]))
    return float(sps.multivariate_normal.cdf(c, np.zeros(c.size), cov, lower_limit=-c,
                                             abseps=1e-7, releps=1e-7, maxpts=1_000_000))


def obf_spending(t, alpha=0.05):
    """Lan-DeMets O'Brien-Fleming-type spending, each side at alpha / 2 (written out here)."""
    return 2 * (2 - 2 * sps.norm.cdf(sps.norm.ppf(1 - alpha / 4) / math.sqrt(t)))


def test_the_oracle_gives_the_published_constants():
    """The oracle itself: Pocock's K = 2 constant and O'Brien-Fleming's K = 2 pair at two-sided
    alpha 0.05 (Jennison & Turnbull, Table 2.1 and 2.3)."""
    pocock = optimize.brentq(lambda c: 1 - p_inside([c, c], [.5, 1]) - 0.05, 1.5, 3)
    assert pocock == pytest.approx(2.178, abs=1e-3)
    obf = optimize.brentq(lambda c: 1 - p_inside([c * math.sqrt(2), c], [.5, 1]) - 0.05, 1.5, 3)
    assert (obf * math.sqrt(2), obf) == pytest.approx((2.797, 1.977), abs=1e-3)


def test_z_bounds_match_the_multivariate_normal():
    """Lan-DeMets O'Brien-Fleming-type at looks 1/2 and 1: the first boundary spends alpha(1/2),
    the second the rest, solved here with the multivariate normal."""
    first = sps.norm.isf(obf_spending(0.5) / 2)
    second = optimize.brentq(lambda c: 1 - p_inside([first, c], [.5, 1]) - 0.05, 1.5, 3)
    assert seq.z_bounds([.5, 1]) == pytest.approx([first, second], abs=1e-5)
    assert (first, second) == pytest.approx((2.963, 1.969), abs=1e-3)   # as tabulated


def test_cumulative_alpha_is_the_spending_function():
    """At each look of a real design the chance of having crossed equals alpha(t), both the
    module's and the one written out here."""
    d = seq.design(5)
    for k in range(1, len(d.fractions) + 1):
        crossed = 1 - p_inside(d.z[:k], d.fractions[:k])
        t = d.fractions[k - 1]
        assert crossed == pytest.approx(obf_spending(t), abs=1e-6, rel=1e-4), k
        assert float(seq.spent(t)) == pytest.approx(obf_spending(t), rel=1e-12)


# --- planted normal seeds

def mc_se(p: float, trials: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / trials)


def false_claim_rate(max_seeds: int, trials: int, seed: int, step=0.4, sd=0.2) -> float:
    """No true step; the futility rule assumes the paper's ``step`` (Table 4's top-1 claims)."""
    rng = np.random.default_rng(seed)
    better = rng.normal(80.9, sd, (trials, max_seeds))
    worse = rng.normal(80.9, sd, (trials, max_seeds))
    code = seq.replay(better, worse, max_seeds, step, sd).code
    return float(np.isin(code, (1, 2)).mean())


def check_false_claims(max_seeds: int, trials: int, seed: int):
    rate = false_claim_rate(max_seeds, trials, seed)
    limit = seq.ALPHA + 3 * mc_se(seq.ALPHA, trials)
    print(f'max-seeds {max_seeds}: false-claim rate {rate:.4f} ({trials} trials, '
          f'limit {limit:.4f})')
    assert rate <= limit, f'max-seeds {max_seeds}: false-claim rate {rate:.4f} > {limit:.4f}'


def test_false_claim_rate_holds_under_repeated_looks():
    check_false_claims(max_seeds=5, trials=20_000, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize('max_seeds', [3, 8, 12])
def test_false_claim_rate_holds_many_trials(max_seeds):
    check_false_claims(max_seeds, trials=200_000, seed=max_seeds)


@pytest.mark.slow
def test_t_boundaries_spend_alpha_look_by_look():
    """Without futility (no paper step) the null chance of having crossed by each look of the
    t design is alpha(t) on fresh seeds, within Monte Carlo error (the boundaries are
    calibrated a little below it)."""
    trials, max_seeds = 400_000, 8
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (2, trials, max_seeds))
    look = seq.replay(x[0], x[1], max_seeds, None, None)
    d = seq.design(max_seeds)
    for n, t in zip(d.seeds, d.fractions):
        crossed = float((np.isin(look.code, (1, 2)) & (look.n <= n)).mean())
        se = mc_se(float(seq.spent(t)), trials)
        assert crossed <= seq.spent(t) + 3 * se + 1e-6, (n, crossed, float(seq.spent(t)))
        calibration = (seq._CALIBRATION_MARGIN + 2) * math.sqrt(seq.spent(t)
                                                               / seq._CALIBRATION_PATHS)
        assert crossed >= seq.spent(t) - 3 * se - calibration, n


def z_procedure_power(step, sd, max_seeds, trials, rng) -> float:
    """The design with the SD known, run here look by look: the recursion's claim, simulated."""
    d = seq.design(max_seeds)
    better = rng.normal(step, sd, (trials, max_seeds)).cumsum(1)
    worse = rng.normal(0, sd, (trials, max_seeds)).cumsum(1)
    open_ = np.ones(trials, bool)
    reproduced = np.zeros(trials, bool)
    for k, n in enumerate(d.seeds):
        z = (better[:, n - 1] - worse[:, n - 1]) / n / (sd * math.sqrt(2 / n))
        up = open_ & (z >= d.z[k])
        reproduced |= up
        open_ &= np.abs(z) < d.z[k]
        if n < max_seeds:
            cp = seq.futility_cp(z, sd, step, d.fractions[k], d.z[-1], max_seeds)
            open_ &= ~(cp < seq.FUTILITY_CP)
    return float(reproduced.mean())


def t_procedure_power(step, sd, max_seeds, trials, rng) -> float:
    better = rng.normal(step, sd, (trials, max_seeds))
    worse = rng.normal(0, sd, (trials, max_seeds))
    return float((seq.replay(better, worse, max_seeds, step, sd).code == 1).mean())


def check_power(step: float, sd: float, trials: int, seed: int):
    """At ``seeds_needed`` the design reproduces the paper's step with POWER; a seed fewer it
    does not (the sizing is tight); with the SD known, as often as the recursion says."""
    rng = np.random.default_rng(seed)
    n = seq.seeds_needed(step, sd)
    known = seq.design_power(step, sd, n)
    simulated_known = z_procedure_power(step, sd, n, trials, rng)
    power = t_procedure_power(step, sd, n, trials, rng)
    fewer = t_procedure_power(step, sd, n - 1, trials, rng)
    print(f'step {step} sd {sd}: max-seeds {n}; designed power {seq.POWER} (SD estimated): '
          f'{power:.3f}, at {n - 1}: {fewer:.3f}; SD known: designed {known:.3f}, '
          f'simulated {simulated_known:.3f} ({trials} trials)')
    se = mc_se(known, trials)
    assert abs(simulated_known - known) <= 3 * se, (simulated_known, known)
    assert power >= seq.POWER - 3 * mc_se(seq.POWER, trials), power
    assert fewer <= seq.POWER + 3 * mc_se(seq.POWER, trials), fewer


def test_power_at_the_papers_step():
    """Table 4's 'regular conv1 > causal conv1' on top-1: the paper's step at the prior SD."""
    pair = next(p for p in seq.pairs(TABLE4) if p.metric == 'top1')
    check_power(pair.step, METRICS['top1'].prior_sd, trials=20_000, seed=2)


# Table 4's pairs whose paper step is at least one prior SD: max-seeds up to about 20.
SIZEABLE = [p for p in seq.pairs(TABLE4) if abs(p.step) >= METRICS[p.metric].prior_sd - 1e-9]


@pytest.mark.slow
@pytest.mark.parametrize('pair', SIZEABLE, ids=[f'{p.claim.better}-{p.metric}' for p in SIZEABLE])
def test_power_at_each_papers_step(pair):
    check_power(pair.step, METRICS[pair.metric].prior_sd, trials=40_000, seed=3)


def check_saving(max_seeds: int, trials: int, seed: int) -> float:
    values = seq.planted(TABLE4, max_seeds, trials, np.random.default_rng(seed))
    runs, fixed = seq.seed_runs(TABLE4, values, max_seeds)
    saved = fixed - runs.mean()
    se = runs.std() / math.sqrt(trials)
    print(f'Table 4, max-seeds {max_seeds}: {runs.mean():.1f} seed-runs against {fixed} fixed, '
          f'{saved:.1f} saved ({saved / fixed:.0%}, SE {se:.2f}; {trials} trials)')
    assert saved > 3 * se, (saved, se)
    return saved


def test_seed_runs_saved_on_table4():
    check_saving(max_seeds=10, trials=2_000, seed=4)


@pytest.mark.slow
@pytest.mark.parametrize('max_seeds', [5, 10, 20])
def test_seed_runs_saved_on_table4_many_trials(max_seeds):
    check_saving(max_seeds, trials=20_000, seed=max_seeds)


# --- the round loop and the table's pairs

def test_table4_pairs_are_its_claims_on_every_metric():
    pairs = seq.pairs(TABLE4)
    assert len(pairs) == 12 and {p.metric for p in pairs} == set(TABLE4.metrics)
    concat = next(p for p in pairs if p.claim.better == 'conv2-concat' and p.metric == 'top1')
    assert concat.step == pytest.approx(82.3 - 81.3)
    assert set(seq.pair_alpha(TABLE4).values()) == {seq.ALPHA}


def test_rows_to_train_only_for_open_pairs():
    pairs = seq.pairs(TABLE4)
    assert seq.rows_to_train(TABLE4, {}) == {
        slug: ('cls', 'det', 'seg')
        for slug in ('causal-noconv2', 'regular-noconv2', 'conv2-gate', 'conv2-concat')}
    decided = {p: (seq.REPRODUCED if p.claim.better == 'conv2-concat' else seq.MORE_SEEDS)
               for p in pairs}
    decided.update({p: seq.FUTILE for p in pairs
                    if p.claim.better == 'regular-noconv2' and METRICS[p.metric].task == 'det'})
    assert seq.rows_to_train(TABLE4, decided) == {
        'causal-noconv2': ('cls', 'seg'), 'regular-noconv2': ('cls', 'det', 'seg'),
        'conv2-gate': ('cls', 'det', 'seg')}
    assert seq.rows_to_train(TABLE4, {p: seq.CONTRADICTED for p in pairs}) == {}


def test_decisions_are_final_and_need_two_seeds():
    top1 = METRICS['top1']
    assert seq.decide([81.0], [80.0, 80.1], top1, 6, 1.0).decision == seq.MORE_SEEDS
    better = [82.3, 82.4, 82.2, 82.3]
    worse = [80.5, 80.6, 80.4, 80.5]
    first = seq.decide(better, worse, top1, 6, 1.0)
    assert first.decision == seq.REPRODUCED and first.n < len(better)
    # Seeds trained later for another pair reverse the step: the verdict stays where it was.
    later = seq.decide(better + [78.0] * 4, worse + [84.0] * 4, top1, 6, 1.0)
    assert later == first
    flipped = seq.decide(worse, better, top1, 6, 1.0)
    assert (flipped.decision, flipped.n) == (seq.CONTRADICTED, first.n)


def test_seeds_that_agree_exactly_use_the_prior_sd():
    v = seq.decide([80.4] * 3, [80.0] * 3, METRICS['top1'], 6, 1.0)
    assert (v.decision, v.n, v.noise, v.sd) == (seq.MORE_SEEDS, 3, seq.PRIOR, 0.2)
    assert v.stat == pytest.approx(0.4 / (0.2 * math.sqrt(2 / 3)))
    assert v.bound == seq.design(6).z[1]


def test_an_open_pair_at_max_seeds_is_futile():
    v = seq.decide([80.0, 80.3, 79.9], [80.1, 80.0, 80.2], METRICS['top1'], 3, None)
    assert (v.decision, v.n) == (seq.FUTILE, 3)
    with pytest.raises(ValueError, match='first look'):
        seq.design(seq.MIN_SEEDS - 1)


def test_round_loop_trains_what_seed_runs_counts():
    """The orchestrator's loop, emulated with decide_table and rows_to_train on planted seeds,
    trains exactly the seed-runs that ``seed_runs`` counts."""
    max_seeds, trials = 6, 12
    values = seq.planted(TABLE4, max_seeds, trials, np.random.default_rng(5))
    counted, _ = seq.seed_runs(TABLE4, values, max_seeds)
    for trial in range(trials):
        trained: dict[tuple[str, str], int] = {}
        for slug, metric in values:
            trained[slug, METRICS[metric].task] = seq.MIN_SEEDS
        for _ in range(max_seeds):   # a pair open at max-seeds is futile: the loop ends
            seen = {slug: {m: values[slug, m][trial, :trained[slug, METRICS[m].task]]
                           for s, m in values if s == slug} for slug, _ in values}
            verdicts = seq.decide_table(TABLE4, seen, max_seeds)
            todo = seq.rows_to_train(TABLE4, {p: v.decision for p, v in verdicts.items()})
            if not todo:
                break
            for slug, tasks in todo.items():
                for task in tasks:
                    trained[slug, task] += 1
        else:
            pytest.fail(f'trial {trial}: pairs still open after {max_seeds} rounds')
        assert sum(trained.values()) == counted[trial], trial
