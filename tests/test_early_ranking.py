"""The official curves as evidence for reduced runs (runs/logs/early_ranking.py): rankings and
gaps at a fraction of the schedule against the end, checked against scipy.stats.kendalltau and
hand arithmetic on the raw logged values, and docs/reduced_runs.md against what the code renders.
"""
from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path

import pytest
from scipy.stats import kendalltau

from ablations import get_table
from ablations.reference_catalog import SOURCES, reference_path
from runs.logs.early_ranking import (
    EXCLUDED,
    GROUPS,
    evidence,
    final_from,
    group_evidence,
    kendall_tau,
    main,
    pair_gaps,
    reduced_run_caveat,
    render_markdown,
    tau_by_step,
)

DOC = Path(__file__).resolve().parent.parent / 'docs' / 'reduced_runs.md'
IMAGENET = ('t2', 't4', 's6', 'b1', 'b2', 'b4')  # the final EMA top-1 order, lowest first


def raw_evaluations(ref_id: str) -> list[dict]:
    """The extraction's evaluations as stored, without the module under test."""
    with gzip.open(reference_path(ref_id), 'rt') as f:
        return json.load(f)['evaluations']


def imagenet_top1() -> dict[str, dict[int, float]]:
    """EMA top-1 (the trainer's accuracy/top1) by epoch for each of the six runs."""
    return {v: {e['step']: e['metrics']['accuracy/top1']
                for e in raw_evaluations(f'mobilemamba-{v}-in1k')} for v in IMAGENET}


def test_imagenet_ranking_is_final_from_epoch_20_as_scipy_computes_it():
    """The issue's figures: tau 0.47 at epoch 10, 1.0 from epoch 20 on; S6 - T4 is 3.0 points at
    epoch 30 and 1.9 at the end."""
    top1 = imagenet_top1()
    end = [top1[v][300] for v in IMAGENET]
    assert end == sorted(end)  # the final ranking is T2 < T4 < S6 < B1 < B2 < B4
    scipy_tau = {epoch: kendalltau([top1[v][epoch] for v in IMAGENET], end).statistic
                 for epoch in sorted(top1['t2']) if epoch < 300}
    assert round(scipy_tau[10], 2) == 0.47
    # scipy's 1.0 is 0.9999999999999999 (a float division), hence approx.
    assert all(tau == pytest.approx(1.0) for epoch, tau in scipy_tau.items() if epoch >= 20)
    assert scipy_tau[15] == pytest.approx(0.6)  # T2 > T4 > S6 at epoch 15: 3 of 15 pairs
    ours = dict(tau_by_step(GROUPS[0]))
    assert len(ours) == len(scipy_tau)
    for epoch, tau in scipy_tau.items():
        assert ours[epoch / 300] == pytest.approx(tau, abs=1e-12), epoch
    assert final_from(GROUPS[0]) == 20 / 300
    assert round(top1['s6'][30] - top1['t4'][30], 1) == 3.0
    assert round(top1['s6'][300] - top1['t4'][300], 1) == 1.9
    pair = [g for g in pair_gaps(GROUPS[0], (0.1, )) if (g.lower, g.upper) == ('T4', 'S6')]
    assert pair[0].gap_at_f == pytest.approx(top1['s6'][30] - top1['t4'][30])
    assert pair[0].gap_final == pytest.approx(top1['s6'][300] - top1['t4'][300])


def test_the_table_row_at_a_tenth_by_hand():
    """f = 0.1 of 300 epochs is epoch 30; the gap ratio is the median over the five adjacent
    pairs of (gap at epoch 30) / (gap at epoch 300)."""
    top1 = imagenet_top1()
    ratios = [(top1[b][30] - top1[a][30]) / (top1[b][300] - top1[a][300])
              for a, b in zip(IMAGENET, IMAGENET[1:])]
    row, = group_evidence(GROUPS[0], (0.1, ))
    assert row.used == 'epoch 30' and row.tau == 1.0 and row.pairs == 5
    assert row.gap_ratio_median == pytest.approx(statistics.median(ratios))
    assert (row.gap_ratio_min, row.gap_ratio_max) == pytest.approx((min(ratios), max(ratios)))


def test_tau_b_counts_ties_as_scipy_does():
    """Epoch 5 of the ImageNet runs has a tie (B1 and B4 both 0.118); and made-up ties."""
    top1 = imagenet_top1()
    x, y = [top1[v][5] for v in IMAGENET], [top1[v][300] for v in IMAGENET]
    assert x[3] == x[5]
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)
    for a, b in (([1, 2, 2, 3], [1, 3, 2, 4]), ([1, 1, 2, 2], [2, 2, 1, 1]),
                 ([3, 1, 2, 5, 4], [1, 2, 3, 4, 5]), ([1, 2], [2, 1])):
        assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)


def test_the_evaluation_used_is_the_nearest_at_or_before_f():
    """MambaVision UperNet: T evaluates every 16k, S and B every 10k of 160k iterations. At
    f = 0.1 (16k) T has 16k and S, B their 10k; at 0.3 (48k) T 48k, S and B 40k; at 0.05 (8k)
    nobody. S's last training evaluation is at 150k: its end is the final model's test."""
    group = GROUPS[1]
    rows = {r.f: r for r in group_evidence(group)}
    assert rows[0.1].used == 'T iteration 16,000; S iteration 10,000; B iteration 10,000'
    assert rows[0.3].used == 'T iteration 48,000; S iteration 40,000; B iteration 40,000'
    assert rows[0.05].tau is None and 'no evaluation by then' in rows[0.05].used
    miou = {v: {e['step']: e['metrics']['mIoU'] for e in raw_evaluations(
        f'mambavision-{v}-upernet-ade20k')} for v in 'tsb'}
    end = {'t': miou['t'][160000], 's': miou['s'][None], 'b': miou['b'][160000]}
    at_tenth = [miou['t'][16000], miou['s'][10000], miou['b'][10000]]
    assert rows[0.1].tau == pytest.approx(
        kendalltau(at_tenth, [end['t'], end['s'], end['b']]).statistic)


def test_every_official_curve_is_grouped_or_excluded_with_a_reason():
    with_curves = {ref_id for ref_id, source in SOURCES.items() if source.kind == 'train'
                   and sum(e['step'] is not None for e in raw_evaluations(ref_id)) >= 2}
    grouped = [ref_id for g in GROUPS for _, ref_id in g.runs]
    assert len(grouped) == len(set(grouped))  # no run in two groups
    assert with_curves == set(grouped) | set(EXCLUDED)
    assert all(len(g.runs) >= 2 for g in GROUPS)


def test_the_caveat_states_the_evidence_and_its_limits():
    """Table 4's published steps by hand (its claims): top-1 0.4, 0.4, 1.0; box AP 0.2, 0.3,
    1.1; mask AP 0.4, 0.2, 0.8; mIoU 0.5, 1.0, 0.3: 0.2 to 1.1, median 0.4."""
    text = reduced_run_caveat(get_table('table4'))
    assert 'from epoch 20 of 300' in text
    assert "table4's published steps are 0.2 to 1.1 points (median 0.4)" in text
    # T2..B4 final EMA top-1 gaps by hand: 76.044-73.59 = 2.5 ... 82.46-81.592 = 0.9.
    assert '0.9 to 2.5 top-1 points apart at the end, median 1.9' in text
    assert 'DeepLabv3 vs PSPNet, 0.3 mIoU apart' in text
    assert 'Budgeted Training, ICLR 2020' in text and 'not a short schedule' in text
    assert '\n' not in text


def test_the_doc_shows_what_the_code_renders_today():
    doc = DOC.read_text()
    assert render_markdown(evidence()) in doc
    quoted = ' '.join(line[2:] for line in doc.splitlines() if line.startswith('> '))
    assert quoted == reduced_run_caveat(get_table('table4'))


def test_the_command_line(capsys):
    assert main(['table4']) == 0
    assert render_markdown(evidence()) in capsys.readouterr().out
    assert main(['nope']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'nope'" in err and 'table4' in err
