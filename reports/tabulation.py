"""Records -> the paper's layout: one profile, seeds aggregated, cells as text, claim checks.

Numbers are printed with one decimal like the paper, rounded half up (after dropping float
noise, so 46.349999999 from 0.4635 * 100 prints 46.4). A delta is ours as printed minus the
paper's, so the three numbers of a cell agree with each other on the page.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Optional

import pandas as pd

from ablations import METRICS, AblationTable

from . import stats

PROBLEM_STATUSES = ('missing', 'running', 'interrupted', 'failed', 'corrupt', 'partial', 'nan')
NO_RUN = '-'
NOT_PUBLISHED_TEXT = 'n/p'


def round1(value: float) -> Decimal:
    """``value`` rounded half up to one decimal."""
    return Decimal(f'{value:.10f}').quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)


def fmt1(value: float) -> str:
    return str(round1(value))


def fmt_delta(ours: float, published: float) -> str:
    """Signed difference of the printed values; zero prints as 0.0."""
    delta = round1(ours) - round1(published)
    return '0.0' if delta == 0 else f'{delta:+.1f}'


def select_profile(frame: pd.DataFrame, requested: Optional[str]
                   ) -> tuple[pd.DataFrame, str, list[str]]:
    """Only the records of one profile: ``requested``, else the newest run's. Runs of other
    profiles are named in the warnings, never mixed in."""
    if frame.empty:
        return frame, requested or 'unknown', []
    profile = requested
    if profile is None:
        dated = frame.dropna(subset=['started'])
        if not dated.empty:
            profile = str(dated.sort_values('started', kind='stable').iloc[-1]['profile'])
        else:
            profiles = frame['profile'].unique()
            profile = str(profiles[0]) if len(profiles) == 1 else 'unknown'
    kept = frame[frame['profile'] == profile]
    warnings = []
    for other, runs in frame[frame['profile'] != profile].groupby('profile'):
        seeds = runs.drop_duplicates(['row', 'task', 'seed'])
        rows = ', '.join(sorted(seeds['row'].unique()))
        hint = f'; report them with --profile {other}' if other != 'unknown' else ''
        warnings.append(f'left out {len(seeds)} run(s) of profile {other!r} (rows: {rows}): '
                        f'this report is profile {profile!r}{hint}')
    return kept, profile, warnings


def problem_text(record: pd.Series) -> str:
    """What a cell says for a record without a number."""
    status, detail = record['status'], record['detail']
    if status in ('running', 'interrupted') or not detail:
        return status
    return f'{status}: {detail}'


@dataclass
class Cell:
    """Our result for one (row, metric) over seeds, and the paper's."""
    values: list[float] = field(default_factory=list)        # ok seeds, paper units
    problems: list[tuple[int, str]] = field(default_factory=list)  # (seed, text)
    published: Optional[float] = None
    show_median: bool = False   # the paper reports medians: print ours beside the mean

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1), NaN for fewer than two seeds."""
        if self.n < 2:
            return math.nan
        mean = self.mean
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (self.n - 1))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.n else math.nan

    def ours_text(self) -> str:
        if not self.values and not self.problems:
            return NO_RUN
        parts = []
        if self.values:
            text = fmt1(self.mean)
            if self.n >= 2:
                text += f' ± {fmt1(self.std)}'
            if self.show_median and self.n >= 2:
                text += f' (median {fmt1(self.median)})'
            parts.append(f'{text} n={self.n}')
        if self.values or len(self.problems) > 1:
            parts += [f'seed{seed} {text}' for seed, text in self.problems]
        else:
            parts.append(self.problems[0][1])
        return '; '.join(parts)

    def text(self) -> str:
        """``ours (published, delta)``."""
        if self.published is None:
            return f'{self.ours_text()} ({NOT_PUBLISHED_TEXT})'
        published = fmt1(self.published)
        if not self.values:
            return f'{self.ours_text()} ({published})'
        return f'{self.ours_text()} ({published}, {fmt_delta(self.mean, self.published)})'


def summarize(frame: pd.DataFrame, table: AblationTable) -> dict[tuple[str, str], Cell]:
    """One :class:`Cell` per (row slug, metric) of the table, from one profile's records."""
    cells = {}
    for row in table.rows:
        for metric in table.metrics:
            cell = Cell(published=row.published.get(metric), show_median=table.reports_median)
            mine = frame[(frame['row'] == row.slug) & (frame['metric'] == metric)]
            for _, record in mine.sort_values('seed').iterrows():
                if record['status'] == 'ok':
                    cell.values.append(float(record['value']))
                else:
                    cell.problems.append((int(record['seed']), problem_text(record)))
            cells[row.slug, metric] = cell
    return cells


def complexity_text(ours: Optional[dict], published: Optional[float], key: str,
                    divisor: float) -> str:
    """A params (key 'params', divisor 1e6) or FLOPs ('flops', 1e9) cell."""
    paper = NOT_PUBLISHED_TEXT if published is None else fmt1(published)
    if ours is None:
        return f'skipped ({paper})'
    if 'error' in ours:
        return f'error: {ours["error"]} ({paper})'
    value = ours[key] / divisor
    if published is None:
        return f'{fmt1(value)} ({paper})'
    return f'{fmt1(value)} ({paper}, {fmt_delta(value, published)})'


def paper_layout(cells: dict[tuple[str, str], Cell], table: AblationTable,
                 complexity: Optional[dict[str, dict]], row_marks: dict[str, str]
                 ) -> pd.DataFrame:
    """The table as printed: rows by the paper's names (plus footnote marks), one text column
    per metric, then params and FLOPs when ``complexity`` is given (None: columns left out)."""
    rows = []
    for row in table.rows:
        line = {'Row': row.name + row_marks.get(row.slug, '')}
        for metric in table.metrics:
            line[METRICS[metric].label] = cells[row.slug, metric].text()
        if complexity is not None:
            ours = complexity.get(row.slug)
            line['Params (M)'] = complexity_text(ours, row.published_params_m, 'params', 1e6)
            line['GFLOPs'] = complexity_text(ours, row.published_gflops, 'flops', 1e9)
        rows.append(line)
    return pd.DataFrame(rows)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def pair_agreement(cells: dict[tuple[str, str], Cell], table: AblationTable) -> pd.DataFrame:
    """Per metric: of the row pairs the paper orders strictly (both published, both run), how
    many keep that order in ours (a tie in ours does not)."""
    out = []
    for metric in table.metrics:
        rows = [r.slug for r in table.rows
                if cells[r.slug, metric].published is not None and cells[r.slug, metric].n]
        agree = pairs = 0
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                paper = _sign(cells[a, metric].published - cells[b, metric].published)
                if paper == 0:
                    continue
                pairs += 1
                agree += _sign(cells[a, metric].mean - cells[b, metric].mean) == paper
        out.append(dict(metric=metric, agree=agree, pairs=pairs, rows=len(rows)))
    return pd.DataFrame(out, columns=['metric', 'agree', 'pairs', 'rows'])


STEP_COLUMNS = ['kind', 'claim', 'metric', 'better', 'worse', 'paper_step', 'n_better',
                'n_worse', 'diff', 'ci_low', 'ci_high', 'p_value', 'median_diff', 'noise', 'sd',
                'verdict', 'seeds_needed']


def step_record(cells: dict[tuple[str, str], Cell], better: str, worse: str, metric: str
                ) -> dict:
    """The step ``better - worse`` of one metric as numbers (NaN / None where there are none);
    ``verdict`` names the rows without a result when the step cannot be computed."""
    b, w = cells[better, metric], cells[worse, metric]
    # as printed: 44.7 - 44.2 is 0.5, not 0.50000000000000711
    paper = (float(round1(b.published) - round1(w.published))
             if b.published is not None and w.published is not None else math.nan)
    record = dict(metric=metric, better=better, worse=worse, paper_step=paper,
                  n_better=b.n, n_worse=w.n, diff=math.nan, ci_low=math.nan, ci_high=math.nan,
                  p_value=math.nan, median_diff=math.nan, noise='', sd=math.nan,
                  seeds_needed=None)
    missing = [slug for slug, cell in ((better, b), (worse, w)) if not cell.n]
    if missing:
        return dict(record, verdict='not checked: no result for ' + ', '.join(missing))
    step = stats.compare(b.values, w.values, METRICS[metric])
    return dict(record, diff=step.diff, ci_low=step.low, ci_high=step.high, p_value=step.p,
                median_diff=step.median_diff, noise=step.noise, sd=step.sd,
                verdict=step.verdict if step.noise else 'not checked: no noise level',
                seeds_needed=stats.seeds_needed(paper, step.sd))


def claim_steps(cells: dict[tuple[str, str], Cell], table: AblationTable) -> pd.DataFrame:
    """Each of the paper's claimed steps, per metric, as numbers (one row each)."""
    out = [dict(step_record(cells, claim.better, claim.worse, metric), kind='claim',
                claim=claim.text)
           for claim in table.claims for metric in claim.metrics or table.metrics]
    return pd.DataFrame(out, columns=STEP_COLUMNS)


def baseline_steps(cells: dict[tuple[str, str], Cell], table: AblationTable) -> pd.DataFrame:
    """Every row's step from the table's first row (the paper's starting point), per metric:
    what the step plot draws."""
    base = table.rows[0]
    out = [dict(step_record(cells, row.slug, base.slug, metric), kind='from baseline',
                claim=f'{row.name} - {base.name}')
           for metric in table.metrics for row in table.rows[1:]]
    return pd.DataFrame(out, columns=STEP_COLUMNS)


def _signed(value: float) -> str:
    text = f'{value:+.2f}'
    return '0.00' if float(text) == 0 else text  # never "-0.00"


def p_text(p: float) -> str:
    if math.isnan(p):
        return NO_RUN
    return '<0.001' if p < 0.001 else f'{p:.3f}'


def noise_text(record: pd.Series) -> str:
    """Which spread the interval rests on, and from how many seeds."""
    if not record['noise']:
        return NO_RUN if record['n_better'] == 0 or record['n_worse'] == 0 else 'none known'
    seeds = f'n={record["n_better"]} vs {record["n_worse"]}'
    what = {stats.OBSERVED: 'observed', stats.OBSERVED_ONE_ROW: 'observed in one row',
            stats.PRIOR: 'prior noise'}[record['noise']]
    return f'{what}, sd {record["sd"]:.2f} ({seeds})'


def seeds_text(record: pd.Series) -> str:
    if math.isnan(record['paper_step']):
        return NOT_PUBLISHED_TEXT
    if math.isnan(record['sd']):
        return NO_RUN
    if record['paper_step'] == 0:
        return 'paper: no step'
    needed = record['seeds_needed']
    return f'>{stats.MAX_SEEDS}' if needed is None or pd.isna(needed) else str(int(needed))


def claim_check(cells: dict[tuple[str, str], Cell], table: AblationTable) -> pd.DataFrame:
    """Each of the paper's ablation steps, per metric, as text: is ``better - worse`` in ours
    above seed noise (95% interval), and how many seeds per row would resolve the paper's."""
    steps = claim_steps(cells, table)
    out = []
    for _, r in steps.iterrows():
        b, w = cells[r['better'], r['metric']], cells[r['worse'], r['metric']]
        paper = (fmt_delta(b.published, w.published) if not math.isnan(r['paper_step'])
                 else NOT_PUBLISHED_TEXT)
        if math.isnan(r['diff']):
            ours = medians = NO_RUN
        else:
            interval = ('no interval' if math.isnan(r['ci_low'])
                        else f'{_signed(r["ci_low"])}, {_signed(r["ci_high"])}')
            ours = f'{_signed(r["diff"])} [{interval}]'
            medians = _signed(r['median_diff'])
        out.append(dict(claim=r['claim'], metric=r['metric'], paper=paper, ours=ours,
                        p=p_text(r['p_value']), medians=medians, noise=noise_text(r),
                        verdict=r['verdict'], seeds=seeds_text(r)))
    return pd.DataFrame(out, columns=['claim', 'metric', 'paper', 'ours', 'p', 'medians',
                                      'noise', 'verdict', 'seeds'])
