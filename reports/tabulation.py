"""Records -> the paper's layout: one profile, seeds aggregated, cells as text, claim checks.

Numbers are printed with one decimal like the paper, rounded half up (after dropping float
noise, so 46.349999999 from 0.4635 * 100 prints 46.4). A delta is ours as printed minus the
paper's, so the three numbers of a cell agree with each other on the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Optional

import pandas as pd

from ablations import METRICS, AblationTable

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

    def ours_text(self) -> str:
        if not self.values and not self.problems:
            return NO_RUN
        parts = []
        if self.values:
            text = fmt1(self.mean)
            if self.n >= 2:
                text += f' ± {fmt1(self.std)}'
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
            cell = Cell(published=row.published.get(metric))
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


def claim_check(cells: dict[tuple[str, str], Cell], table: AblationTable) -> pd.DataFrame:
    """Each of the paper's ablation steps, per metric: does ``better`` beat ``worse`` in ours."""
    out = []
    for claim in table.claims:
        for metric in claim.metrics or table.metrics:
            better, worse = cells[claim.better, metric], cells[claim.worse, metric]
            paper = (fmt_delta(better.published, worse.published)
                     if better.published is not None and worse.published is not None
                     else NOT_PUBLISHED_TEXT)
            missing = [slug for slug, cell in ((claim.better, better), (claim.worse, worse))
                       if not cell.n]
            if missing:
                ours, verdict = NO_RUN, 'not checked: no result for ' + ', '.join(missing)
            else:
                diff = better.mean - worse.mean
                ours = f'{diff:+.2f}'
                verdict = 'reproduced' if diff > 0 else 'not reproduced'
                spreads = [s for s in (better.std, worse.std) if not math.isnan(s)]
                if spreads and abs(diff) <= max(spreads):
                    verdict += ' (within one seed std)'
            out.append(dict(claim=claim.text, metric=metric, paper=paper, ours=ours,
                            verdict=verdict))
    return pd.DataFrame(out, columns=['claim', 'metric', 'paper', 'ours', 'verdict'])
