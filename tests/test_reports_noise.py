"""Noise-aware claim checks on planted logs: intervals, p-values, verdicts, seeds needed.

The logs are written with test_reports' helpers (the run-dir layout lives there), so these
tests follow any change of that layout. Expected numbers come from scipy on the planted values
and, for Welch's interval, from its textbook formula.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import statistics
from pathlib import Path

import pytest
from scipy import stats as sps

from ablations import METRICS, get_table
from reports import stats
from tools import report as cli
from reports.tabulation import Cell, claim_check
from test_reports import TABLE, T1, bars, md_table, saved_figures, seed_dir, train_line, \
    val_line, write_run_json, write_scalars  # noqa: F401  (saved_figures: a fixture)

# Top-1 per seed. Claims of table4: regular > causal (a clear step), gate > regular (within
# noise), concat > gate (ours goes clearly the other way).
PLANTED = {
    'causal-noconv2': [80.0, 80.2, 80.1],
    'regular-noconv2': [81.0, 81.1, 80.9],
    'conv2-gate': [80.8, 81.5, 81.2],
    'conv2-concat': [79.9, 80.0, 80.1],
}
CLAIMS = {  # claim text -> (better, worse, verdict)
    'regular conv1 > causal conv1': ('regular-noconv2', 'causal-noconv2', 'reproduced'),
    'conv2 > w/o conv2': ('conv2-gate', 'regular-noconv2', 'inconclusive'),
    'concat > w/o concat (gating)': ('conv2-concat', 'conv2-gate', 'contradicted'),
}
TOP1 = METRICS['top1']


def plant(root: Path, values: dict[str, list[float]]) -> None:
    for row, seeds in values.items():
        for seed, value in enumerate(seeds):
            d = seed_dir(root, row, 'cls', seed, profile='full')  # verdicts: full runs only
            write_run_json(d)
            write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': value})])


def report(tmp_path: Path, monkeypatch, values: dict[str, list[float]]) -> Path:
    monkeypatch.chdir(tmp_path)
    plant(tmp_path / 'work_dirs', values)
    assert cli.main([TABLE, '--out', 'out', '--no-complexity']) == 0
    return tmp_path / 'out'


def steps_csv(out: Path) -> dict[tuple[str, str], dict]:
    with open(out / f'{TABLE}_steps.csv') as f:
        return {(r['kind'], r['claim'], r['metric']): r for r in csv.DictReader(f)}


def claim_lines(markdown: str) -> dict[tuple[str, str], list[str]]:
    """The claim table's cells by (claim, metric label)."""
    section = markdown[markdown.index('## Claim check'):markdown.index('## Warnings')]
    lines = [line for line in section.splitlines() if line.startswith('| ') and ' > ' in line]
    cells = [[c.strip() for c in line.strip().strip('|').split(' | ')] for line in lines]
    return {(c[0], c[1]): c for c in cells}


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float]:
    """Welch's 95% interval of mean(a) - mean(b) from the textbook formula."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    diff = statistics.fmean(a) - statistics.fmean(b)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    return diff - half, diff + half


def test_three_seeds_interval_p_and_verdict_match_scipy(tmp_path, monkeypatch):
    out = report(tmp_path, monkeypatch, PLANTED)
    steps = steps_csv(out)
    for text, (better, worse, verdict) in CLAIMS.items():
        r = steps['claim', text, 'top1']
        a, b = PLANTED[better], PLANTED[worse]
        test = sps.ttest_ind(a, b, equal_var=False)
        interval = test.confidence_interval(0.95)
        assert float(r['diff']) == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
        assert float(r['ci_low']) == pytest.approx(interval.low)
        assert float(r['ci_high']) == pytest.approx(interval.high)
        assert (float(r['ci_low']), float(r['ci_high'])) == pytest.approx(welch_by_hand(a, b))
        assert float(r['p_value']) == pytest.approx(test.pvalue)
        assert r['noise'] == stats.OBSERVED and (r['n_better'], r['n_worse']) == ('3', '3')
        assert r['verdict'] == verdict, text
        assert float(r['median_diff']) == pytest.approx(
            statistics.median(a) - statistics.median(b))
    # the metrics without runs are not checked, and say which rows lack a result
    assert steps['claim', 'conv2 > w/o conv2', 'miou']['verdict'] == (
        'not checked: no result for conv2-gate, regular-noconv2')


def test_markdown_claim_table(tmp_path, monkeypatch):
    out = report(tmp_path, monkeypatch, PLANTED)
    text = (out / f'{TABLE}.md').read_text()
    claims = claim_lines(text)
    a, b = PLANTED['regular-noconv2'], PLANTED['causal-noconv2']
    sd = math.sqrt((statistics.variance(a) + statistics.variance(b)) / 2)  # pooled, equal n
    needed = stats.seeds_needed(80.9 - 80.5, sd)
    low, high = welch_by_hand(a, b)
    assert sps.ttest_ind(a, b, equal_var=False).pvalue < 0.001
    assert claims['regular conv1 > causal conv1', 'ImageNet top-1 (%)'] == [
        'regular conv1 > causal conv1', 'ImageNet top-1 (%)', '+0.4',
        f'+0.90 [{low:+.2f}, {high:+.2f}]', '<0.001', '+0.90',
        f'observed, sd {sd:.2f} (n=3 vs 3)', 'reproduced', str(needed)]
    row = claims['concat > w/o concat (gating)', 'ImageNet top-1 (%)']
    assert row[2] == '+1.0' and row[3].startswith('-1.17 [') and row[7] == 'contradicted'
    assert claims['conv2 > w/o conv2', 'ImageNet top-1 (%)'][7] == 'inconclusive'
    assert claims['conv2 > w/o conv2', 'COCO AP box'][3:] == [
        '-', '-', '-', '-', 'not checked: no result for conv2-gate, regular-noconv2', '-']
    for header in ('paper (better - worse)', 'ours: mean step [95% CI]', 'ours: median step',
                   "seeds/row for the paper's step"):
        assert header in text
    assert f'- ImageNet top-1 (%): sd {TOP1.prior_sd} (facebookresearch/deit issue #32' in text
    # the three seeds per row in the cells, as before: 80.1 ± 0.1 n=3
    assert md_table(text)['causal conv1 - w/o conv2 [1]']['ImageNet top-1 (%)'] == \
        '80.1 ± 0.1 n=3 (80.5, -0.4)'


def test_one_seed_per_row_falls_back_to_prior_noise(tmp_path, monkeypatch):
    one_seed = {'causal-noconv2': [80.0], 'regular-noconv2': [80.9], 'conv2-gate': [81.2],
                'conv2-concat': [79.9, 80.1, 80.3]}
    out = report(tmp_path, monkeypatch, one_seed)
    steps = steps_csv(out)
    z = sps.norm.ppf(0.975)
    half = z * TOP1.prior_sd * math.sqrt(2)
    r = steps['claim', 'regular conv1 > causal conv1', 'top1']
    assert r['noise'] == stats.PRIOR and float(r['sd']) == TOP1.prior_sd
    assert float(r['ci_low']) == pytest.approx(0.9 - half)
    assert float(r['ci_high']) == pytest.approx(0.9 + half)
    assert float(r['p_value']) == pytest.approx(2 * sps.norm.sf(0.9 / (TOP1.prior_sd
                                                                       * math.sqrt(2))))
    assert r['verdict'] == 'reproduced'  # 0.9 > 1.96 * 0.2 * sqrt(2) = 0.55
    r = steps['claim', 'conv2 > w/o conv2', 'top1']
    assert r['verdict'] == 'inconclusive'  # 0.3 is inside prior noise
    # One row with three seeds: its sd stands for both rows, t with n - 1 = 2 df.
    r = steps['claim', 'concat > w/o concat (gating)', 'top1']
    sd = statistics.stdev(one_seed['conv2-concat'])
    half = sps.t.ppf(0.975, 2) * sd * math.sqrt(1 / 3 + 1)
    assert r['noise'] == stats.OBSERVED_ONE_ROW
    assert (float(r['ci_low']), float(r['ci_high'])) == pytest.approx((-1.1 - half, -1.1 + half))
    assert r['verdict'] == 'contradicted'
    claims = claim_lines((out / f'{TABLE}.md').read_text())
    assert claims['regular conv1 > causal conv1', 'ImageNet top-1 (%)'][6] == \
        'prior noise, sd 0.20 (n=1 vs 1)'
    assert claims['concat > w/o concat (gating)', 'ImageNet top-1 (%)'][6] == \
        'observed in one row, sd 0.20 (n=3 vs 1)'


def test_identical_seeds_say_nothing_about_noise():
    step = stats.compare([80.0, 80.0], [79.0, 79.0], TOP1)
    assert step.noise == stats.PRIOR and step.sd == TOP1.prior_sd
    unknown = dataclasses.replace(TOP1, prior_sd=None)
    step = stats.compare([80.0], [79.0], unknown)
    assert step.noise == '' and math.isnan(step.low) and step.verdict == 'inconclusive'


@pytest.mark.parametrize('effect, n', [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_seeds_needed_matches_power_tables(effect, n):
    # Two-sided two-sample t-test, alpha 0.05, power 0.8: Cohen's table gives 64, 26 and 17
    # per group for d = 0.5, 0.8 and 1.0; the answer depends on step / sd only.
    assert stats.seeds_needed(effect * 0.2, 0.2) == n
    assert stats.seeds_needed(-effect * 3.0, 3.0) == n
    assert stats.power(effect, 1.0, n) >= 0.8 > stats.power(effect, 1.0, n - 1)


def test_seeds_needed_edge_cases():
    assert stats.seeds_needed(0.0, 0.2) is None           # no step to detect
    assert stats.seeds_needed(0.4, math.nan) is None       # no noise level
    assert stats.seeds_needed(0.001, 1.0) is None          # beyond MAX_SEEDS
    cells = {(r.slug, m): Cell(published=r.published.get(m))
             for r in get_table(TABLE).rows for m in get_table(TABLE).metrics}
    cells['regular-noconv2', 'top1'].values = [81.0]
    cells['causal-noconv2', 'top1'].values = [80.5]
    row = claim_check(cells, get_table(TABLE)).iloc[0]
    # paper step 0.4 at the prior sd 0.2: d = 2, 6 seeds per row
    assert (row['paper'], row['seeds'], row['verdict']) == ('+0.4', '6', 'inconclusive')


def test_medians_where_the_paper_reports_them(tmp_path, monkeypatch):
    table = dataclasses.replace(get_table(TABLE), reports_median=True)
    monkeypatch.setattr(cli, 'get_table', lambda name: table)
    out = report(tmp_path, monkeypatch, {'causal-noconv2': [80.0, 80.1, 81.0]})
    cell = md_table((out / f'{TABLE}.md').read_text())['causal conv1 - w/o conv2 [1]']
    assert cell['ImageNet top-1 (%)'] == '80.4 ± 0.6 (median 80.1) n=3 (80.5, -0.1)'


def test_step_plot_and_absolute_plot(tmp_path, monkeypatch, saved_figures):
    saved = saved_figures
    out = report(tmp_path, monkeypatch, PLANTED)
    for name in (f'{TABLE}.png', f'{TABLE}_absolute.png'):
        assert (out / name).stat().st_size > 10_000
    # The plotted numbers, against the planted logs and the paper's table (not the report's own).
    table = get_table(TABLE)
    published = {r.slug: r.published.get('top1') for r in table.rows}
    mean = {row: statistics.mean(values) for row, values in PLANTED.items()}
    base = table.rows[0].slug
    absolute = bars(saved[f'{TABLE}_absolute.png'], 'top1')
    assert absolute['published'] == pytest.approx(
        {round(i - 0.2, 6): published[r.slug] for i, r in enumerate(table.rows)
         if published[r.slug] is not None})
    assert absolute['ours'] == pytest.approx(
        {round(i + 0.2, 6): mean[r.slug] for i, r in enumerate(table.rows) if r.slug in mean})
    step = bars(saved[f'{TABLE}.png'], 'top1')
    others = table.rows[1:]
    assert step['published step'] == pytest.approx(
        {round(i - 0.2, 6): published[r.slug] - published[base] for i, r in enumerate(others)
         if published[r.slug] is not None})
    ours = {x: h for label, bars in step.items() if label.startswith('ours')
            for x, h in bars.items()}
    assert ours == pytest.approx(
        {round(i + 0.2, 6): mean[r.slug] - mean[base] for i, r in enumerate(others)
         if r.slug in mean})
    steps = steps_csv(out)
    # the plot's numbers: each row's step from the first row, per metric
    r = steps['from baseline', 'conv1 - conv2 - concat - causal conv1 - w/o conv2', 'top1']
    assert float(r['paper_step']) == pytest.approx(82.3 - 80.5)
    assert float(r['diff']) == pytest.approx(-0.1) and r['verdict'] == 'inconclusive'
    assert len([k for k in steps if k[0] == 'from baseline']) == 4 * 4  # 4 rows x 4 metrics
