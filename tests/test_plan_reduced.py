"""`./run_all.sh plan` for reduced runs (--schedule-scale, --subset, --seeds N|auto): the reduced
run's schedule from its own config, its device-hours from the same pilot, the plan's estimates
keyed by run profile (and the dry run's line of such a run), and "What you learn for what it
costs": each claim's chance of resolving, checked against scipy, and the seed-runs of auto."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

import runs.commands.planner as planner
from ablations import METRICS, get_table
from reports.plan_learn import TITLE, learn, pair_probability
from reports.seed_rounds import scoped_table
from runs.commands.planner import (
    TRAIN_SET_SIZES,
    estimate_at,
    full_config,
    images_of,
    load_plan,
    plan_line,
    reduced_entry,
    schedule_of,
    table_totals,
    total_iters,
)
from runs.table import sequential as seq
from tools.plan import main

TABLE4 = get_table('table4')
CLS = dict(by_epoch=True, epochs=320, batch_per_gpu=128, train_set_size=TRAIN_SET_SIZES['cls'],
           drop_last=True)
# table4's cls at --schedule-scale 0.1 --subset in100, by hand: 32 of 320 epochs; ImageNet-100
# taken as 100/1000 of ImageNet-1k's 1,281,167 images = 128,116.7 -> 128,117.
REDUCED = dict(CLS, epochs=32, train_set_size=128_117)
ROWS = ['conv2-concat', 'conv2-gate']   # one claim: concat > w/o concat (gating)


def _anchor(rate: float) -> dict:
    return dict(id='x', img_per_gpu_s=rate, gpus=8, gpu_model=None, flops=1e9, shape=[224, 224],
                ours_flops=1e9, ours_multiplier=1.0, ratio=1.0, rate=rate, chosen_by='test')


def _cpu_entry(schedule: dict) -> dict:
    return dict(status='ok', cuda=False, device='CPU (2 cores)', s_per_iter=21.1,
                data_s_per_iter=0.1, peak_mem_gib=25.3, mem_kind='peak RSS', flags=[],
                amp=False, scan_backend='torch (ours)', schedule=schedule,
                anchor=_anchor(221.0), log='pilot.log', iters=2)


def _schedule(task: str, profile: str, tmp_path) -> dict:
    cfg = full_config('table4', 'conv2-concat', task, tmp_path, tmp_path / 'run', 8,
                      profile=profile)
    return schedule_of(cfg, task)


# --- the reduced schedule and its hours ----------------------------------------------------------

def test_the_reduced_schedule_is_the_reduced_runs_config(tmp_path):
    reduced = _schedule('cls', 'full@0.1+in100', tmp_path)   # the full one: test_plan.py
    assert reduced == REDUCED
    # A tenth of the epochs over a tenth of the images: a hundredth of the images.
    assert images_of(reduced, 8) == 32 * 128_117 and images_of(CLS, 8) == 320 * 1_281_167
    # 8 GPUs x 128, the last batch dropped: ceil(128,117 / 8) = 16,015 a rank -> 125 batches.
    assert total_iters(reduced, 8) == 32 * 125
    # in100 alone keeps the 320 epochs, each over a tenth of the images.
    assert _schedule('cls', 'full+in100', tmp_path) == dict(CLS, train_set_size=128_117)
    # COCO at 0.1 keeps its 12 epochs and trains 0.1 of each: ceil(117,266 / 8) = 14,659 a
    # rank, ceil(0.1 x 14,659) = 1,466, in batches of 2: 733 iterations an epoch.
    det = _schedule('det', 'full@0.1', tmp_path)
    assert (det['epochs'], det['epoch_fraction']) == (12, 0.1)
    assert total_iters(det, 8) == 12 * 733 and images_of(det, 8) == 12 * 11_727
    # ADE20K at 0.1: 32,000 of the 320,000 iterations (160k steps x accumulation 2 on 8 GPUs).
    assert _schedule('seg', 'full@0.1', tmp_path)['max_iters'] == 32_000


def test_reduced_hours_from_the_same_pilot():
    """On a GPU: the pilot's s/iter x the reduced iterations; without one: the anchor's rate
    over the reduced images. By hand."""
    gpu = dict(status='ok', cuda=True, device='GPU', s_per_iter=0.5, schedule=REDUCED)
    assert estimate_at(gpu, 8)['gpu_hours'] == pytest.approx(4000 * 0.5 / 3600 * 8)
    cpu, full = estimate_at(_cpu_entry(REDUCED), 8), estimate_at(_cpu_entry(CLS), 8)
    # 32 x 128,117 = 4,099,744 images at 221 img/GPU-s = 5.153 GPU-hours; the full run's
    # 320 x 1,281,167 = 409,973,440 images = 515.30 GPU-hours.
    assert cpu['basis'] == 'anchor' and cpu['gpu_hours'] == pytest.approx(5.15302, abs=1e-5)
    assert full['gpu_hours'] == pytest.approx(515.30096, abs=1e-5)
    det = dict(by_epoch=True, epochs=12, batch_per_gpu=2, train_set_size=117_266,
               epoch_fraction=0.1)
    assert estimate_at(dict(gpu, schedule=det), 8)['gpu_hours'] == \
        pytest.approx(12 * 733 * 0.5 / 3600 * 8)


def test_the_plan_keys_reduced_estimates_by_run_profile(tmp_path):
    (tmp_path / 'table4').mkdir()
    full, reduced = _cpu_entry(CLS), dict(_cpu_entry(REDUCED), profile='full@0.1+in100')
    (tmp_path / 'table4' / 'plan.json').write_text(json.dumps(dict(
        profile='full', runs={'conv2-concat/cls': full},
        profiles={'full@0.1+in100': dict(runs={'conv2-concat/cls': reduced})})))
    assert load_plan('table4', tmp_path)['conv2-concat/cls'] == full
    assert load_plan('table4', tmp_path, 'full@0.1+in100')['conv2-concat/cls'] == reduced
    assert load_plan('table4', tmp_path, 'full@0.5') == {}
    assert load_plan('table4', tmp_path, 'smoke') == {}


# --- what you learn ------------------------------------------------------------------------------

def test_fixed_seeds_probability_is_the_t_tests_power_from_scipy():
    """The report's test with N seeds a row at the paper's step and the prior SD: scipy's
    noncentral t, and a simulation of scipy's pooled two-sample t-test; one seed a row: the
    normal test with the prior SD as known."""
    step, sd = 0.4, 0.2
    for n in (2, 3, 5):
        df, ncp = 2 * n - 2, step / (sd * math.sqrt(2 / n))
        crit = sps.t.ppf(0.975, df)
        exact = sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)
        assert pair_probability(step, sd, n) == pytest.approx(exact, abs=1e-9)
    rng = np.random.default_rng(7)
    trials = 100_000
    better, worse = rng.normal(step, sd, (trials, 3)), rng.normal(0.0, sd, (trials, 3))
    simulated = (sps.ttest_ind(better, worse, axis=1).pvalue < 0.05).mean()
    se = math.sqrt(simulated * (1 - simulated) / trials)
    assert abs(pair_probability(step, sd, 3) - simulated) < 4 * se
    # One seed: z = 1.0 / (0.2 sqrt 2) = 3.536 against 1.96 -> 0.9424.
    assert pair_probability(1.0, 0.2, 1) == pytest.approx(0.94244, abs=1e-5)
    assert pair_probability(-1.0, 0.2, 1) == pair_probability(1.0, 0.2, 1)
    # auto: the design's chance of reproducing at max-seeds; none without a published step.
    assert pair_probability(0.4, 0.2, 'auto', 5) == seq.design_power(0.4, 0.2, 5)
    assert pair_probability(None, 0.2, 3) is None


def test_expected_seed_runs_count_the_cls_seed_of_each_det_seed():
    """auto on two rows' cls and det pairs: each (row, task) trains the latest look of its
    pairs; a det seed starts from its row's cls seed, so cls trains at least as many."""
    scoped = scoped_table(TABLE4, ROWS, ['cls', 'det'])
    expected = seq.expected_seed_runs(scoped, 5, trials=2_000, seed=1)
    per_run = seq.seed_runs_per_run(
        scoped, seq.planted(scoped, 5, 2_000, np.random.default_rng(1), skip_unpublished=True), 5)
    for row in ROWS:
        det = per_run[row, 'det']
        assert expected[row, 'det'] == pytest.approx(det.mean())
        assert expected[row, 'cls'] == pytest.approx(np.maximum(per_run[row, 'cls'], det).mean())
        assert seq.MIN_SEEDS <= expected[row, 'cls'] <= 5
    assert expected[ROWS[0], 'cls'] > per_run[ROWS[0], 'cls'].mean()
    # A pair without a published step cannot be planted: open to max-seeds.
    own = get_table('mobilemamba_mrffi')
    assert seq.expected_seed_runs(own, 4, trials=10) == {('official', 'cls'): 4.0,
                                                         ('four-stages', 'cls'): 4.0}


def _plan(reduced: bool = True) -> dict:
    runs = {f'{row}/cls': dict(_cpu_entry(CLS), estimates={'8': estimate_at(_cpu_entry(CLS), 8)})
            for row in ROWS}
    plan = dict(table='table4', profile='full', gpus=[8], runs=runs,
                totals={'8': table_totals(runs, 8)}, reductions=['full'], profiles={})
    if reduced:
        small = {n: dict(_cpu_entry(REDUCED), estimates={'8': estimate_at(_cpu_entry(REDUCED),
                                                                          8)}) for n in runs}
        plan['reductions'].append('full@0.1+in100')
        plan['profiles']['full@0.1+in100'] = dict(runs=small, totals={'8': table_totals(small, 8)})
    return plan


def test_what_you_learn_for_what_it_costs():
    """Per (profile, seeds): N x the runs' hours, or auto's expected seed-runs x each run's
    hours; per pair its probability. Hours by hand from the anchored estimates above."""
    learned = learn(_plan(), TABLE4, [3, 'auto'], 5)
    lines = {(line['profile'], line['seeds']): line for line in learned['lines']}
    assert list(lines) == [('full', 3), ('full', 'auto'), ('full@0.1+in100', 3),
                           ('full@0.1+in100', 'auto')]
    full_h, small_h = 515.30096, 5.15302    # one run, one seed
    assert lines['full', 3]['cost']['8']['gpu_hours'] == pytest.approx(3 * 2 * full_h)
    assert lines['full@0.1+in100', 3]['cost']['8']['gpu_hours'] == pytest.approx(3 * 2 * small_h)
    expected = seq.expected_seed_runs(scoped_table(TABLE4, ROWS, ['cls']), 5)
    auto = lines['full@0.1+in100', 'auto']['cost']['8']
    assert auto['gpu_hours'] == pytest.approx(sum(expected.values()) * small_h)
    assert auto['gpu_hours_max'] == pytest.approx(2 * 5 * small_h)
    assert auto['seed_runs'] == pytest.approx(sum(expected.values()))
    # The one pair the two rows resolve: concat > gating on top-1, paper step 82.3 - 81.3.
    assert [(p['better'], p['worse'], p['metric']) for p in learned['pairs']] == \
        [('conv2-concat', 'conv2-gate', 'top1')]
    step = learned['pairs'][0]['step']
    assert step == pytest.approx(1.0) and len(learned['left_out']) == 11
    assert lines['full@0.1+in100', 3]['probability']['P1'] == \
        pair_probability(step, METRICS['top1'].prior_sd, 3)
    assert lines['full', 'auto']['probability']['P1'] == seq.design_power(step, 0.2, 5)
    md = learned['markdown']
    assert md.startswith(f'## {TITLE}') and '| full@0.1+in100 | auto, max 5 |' in md
    assert "assume the paper's full-schedule step and a full run's seed spread" in md
    assert 'docs/reduced_runs.md' in md and 'Reduced runs rank rows' in md
    # Without a reduced profile there is no reduced-run caveat.
    assert 'Reduced runs rank rows' not in learn(_plan(False), TABLE4, [1], 5)['markdown']


@pytest.mark.parametrize('argv, message', [
    (['--schedule-scale', '0.1,1.5'], '--schedule-scale 1.5 must be a number in (0, 1]'),
    (['--schedule-scale', 'x'], "--schedule-scale 'x' must be a number in (0, 1]"),
    (['--subset', 'none,in1000'], "--subset 'in1000' is not known; valid: in100, none"),
    (['--seeds', '3,some'], "--seeds 'some' must be a whole number >= 1 or auto"),
    (['--seeds', 'auto', '--max-seeds', '1'], '--max-seeds must be at least 2 (the first look)'),
])
def test_bad_reduction_and_seed_options_are_one_line_and_exit_2(argv, message, capsys,
                                                                monkeypatch):
    def no_pilots(*args, **kwargs):
        raise AssertionError(f'{argv} was accepted: the plan would pilot the table')
    monkeypatch.setattr('tools.plan.plan_table', no_pilots)
    assert main(['table4', *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


# --- the command and the dry run (configs built, no training) ------------------------------------

@pytest.mark.slow
def test_the_plan_command_estimates_each_reduction_and_prints_what_you_learn(
        tmp_path, monkeypatch, capsys):
    """The pilots stubbed (a CPU pilot's entry, anchored): the command builds each reduced
    run's config, writes its estimates under its profile, and prints the section."""
    monkeypatch.setattr(planner, 'make_pilot_data', lambda *args: None)
    monkeypatch.setattr(planner, 'run_pilot', lambda *args: _cpu_entry(CLS))
    out = tmp_path / 'table4'
    assert main(['table4', '--rows', ','.join(ROWS), '--tasks', 'cls', '--out', str(out),
                 '--schedule-scale', '0.1,1', '--subset', 'none,in100', '--seeds', '3,auto',
                 '--max-seeds', '5', '--work-dir', str(tmp_path / 'pilots')]) == 0
    plan = json.loads((out / 'plan.json').read_text())
    assert plan['reductions'] == ['full@0.1', 'full@0.1+in100', 'full', 'full+in100']
    reduced = load_plan('table4', tmp_path, 'full@0.1+in100')['conv2-concat/cls']
    assert reduced['schedule'] == REDUCED and reduced['schedules']['8'] == REDUCED
    assert reduced['estimates']['8']['gpu_hours'] == pytest.approx(5.15302, abs=1e-5)
    assert 'schedule scaled by 0.1' in ' '.join(reduced['fidelity']['deviations'])
    assert load_plan('table4', tmp_path)['conv2-concat/cls']['schedules']['8'] == CLS
    assert len(plan['learn']['lines']) == 8
    printed, md = capsys.readouterr().out, (out / 'plan.md').read_text()
    assert plan['learn']['markdown'] in md and plan['learn']['markdown'] in printed
    assert '| conv2-concat/cls | full@0.1+in100 | 32 epochs x 128,117 images | 4,000 | 5.2 |' \
        in md


@pytest.mark.slow
def test_the_dry_run_of_a_reduced_run_shows_its_own_plan_line(tmp_path, capsys):
    """A plan with the full and the 0.1+in100 estimates of conv2-concat cls: each dry run prints
    its own profile's line, and the full line is the one a plan without reductions gives."""
    from tools.run_table import main as run_table
    (tmp_path / 'table4').mkdir()
    entry = _cpu_entry(CLS)
    reduced = reduced_entry(entry, 'table4', 'conv2-concat/cls', 'full@0.1+in100', [8],
                            tmp_path / 'data', tmp_path / 'pilots')
    assert reduced['schedule'] == REDUCED
    common = ['table4', '--rows', 'conv2-concat', '--tasks', 'cls', '--dry-run', '--profile',
              'full', '--report-dir', str(tmp_path), '--work-dir', str(tmp_path / 'work')]

    def plan_lines(plan: dict, *options: str) -> list[str]:
        (tmp_path / 'table4' / 'plan.json').write_text(json.dumps(plan))
        assert run_table(common + list(options)) == 0
        return [line.strip() for line in capsys.readouterr().out.splitlines()
                if line.strip().startswith('plan:')]
    alone = plan_lines(dict(profile='full', runs={'conv2-concat/cls': entry}))
    both = dict(profile='full', runs={'conv2-concat/cls': entry},
                profiles={'full@0.1+in100': dict(runs={'conv2-concat/cls': reduced})})
    assert plan_lines(both) == alone == [plan_line(entry, 1)]
    small = plan_lines(both, '--schedule-scale', '0.1', '--subset', 'in100')
    # On 1 GPU: 32 epochs x floor(128,117 / 128) = 32,000 iterations; 5 GPU-hours (anchored).
    assert small == [plan_line(reduced, 1)] and small[0].startswith(
        'plan: 32,000 iters: 5.2 h, 5 GPU-hours on 1 GPUs; estimate: anchored on x')
    assert plan_lines(both, '--schedule-scale', '0.5') == []
