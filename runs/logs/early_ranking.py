"""What the official training curves say about stopping early: at a fraction f of the schedule,
does the ranking of comparable runs already match the final one, and how large are the gaps?

The data are the committed extractions of the official logs (``ablations/reference_catalog.py``).
Runs are compared only within a group trained on the same schedule and scored on the same metric
(:data:`GROUPS`); every other official run with evaluations during training is listed in
:data:`EXCLUDED` with the reason.

- **The point used at f**: for each run, its evaluation nearest at or before f of its schedule
  (epoch / max_epochs, or iteration / max_iters). A run with no evaluation by f leaves the group
  without a value at f.
- **The final point**: the evaluation at the end of the schedule; where the log's last training
  evaluation comes earlier, the test of the final model that follows it (MambaVision-S: its
  160k-iteration score is the test after training). The final ranking orders these values.
- **Kendall tau** (tau-b, ties counted as scipy counts them) between the values at f and the final
  values of the group's runs.
- **Gap ratio**: for each pair of runs adjacent in the final ranking, (upper - lower) at f over
  (upper - lower) at the end; the table gives the median over those pairs and their range. Below
  0: the pair is reversed at f.

    from runs.logs.early_ranking import evidence, render_markdown, reduced_run_caveat
    print(render_markdown(evidence()))
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

from ablations import TABLES, AblationTable
from ablations.reference_catalog import ReferenceRun, load_reference

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
# A fraction computed from integer steps may land a hair above f (e.g. 3/30 vs 0.1).
_EPS = 1e-9


@dataclass(frozen=True)
class Group:
    """Official runs trained on one schedule and scored on one metric: rankable together."""
    name: str
    metric: str                          # the key in the extraction's evaluation metrics
    label: str                           # the metric as the table shows it
    scale: float                         # logged value x scale = points
    runs: tuple[tuple[str, str], ...]    # (short name, reference id), any order
    note: str = ''


GROUPS: tuple[Group, ...] = (
    Group('MobileMamba ImageNet-1K, 300 epochs', 'accuracy/top1', 'EMA top-1', 1.0,
          tuple((v, f'mobilemamba-{v.lower()}-in1k')
                for v in ('T2', 'T4', 'S6', 'B1', 'B2', 'B4')),
          'six model sizes'),
    Group('MambaVision UperNet ADE20K, 160k iterations', 'mIoU', 'mIoU', 1.0,
          tuple((v, f'mambavision-{v.lower()}-upernet-ade20k') for v in ('T', 'S', 'B')),
          'three model sizes'),
    Group('MobileMamba-B1 COCO 1x, 12 epochs', 'coco/bbox_mAP', 'box AP', 100.0,
          (('Mask R-CNN', 'mobilemamba-b1-maskrcnn-coco'),
           ('RetinaNet', 'mobilemamba-b1-retinanet-coco')),
          'two detectors on one backbone: one pair, so tau is +1 or -1'),
    Group('MobileMamba-B1 SSDLite COCO, 120 epochs', 'coco/bbox_mAP', 'box AP', 100.0,
          (('320 px', 'mobilemamba-b1-ssdlite320-coco'),
           ('512 px', 'mobilemamba-b1-ssdlite512-coco')),
          'two input sizes on one backbone: one pair; both logs start at a resume'),
    Group('MobileMamba-B4 ADE20K, 80k iterations', 'mIoU', 'mIoU', 1.0,
          (('DeepLabv3', 'mobilemamba-b4-deeplabv3-ade20k'),
           ('PSPNet', 'mobilemamba-b4-pspnet-ade20k')),
          'two decoders on one backbone: one pair; the PSPNet log starts at a resume'),
)

# Official runs with evaluations during training that no group holds, and why.
EXCLUDED: dict[str, str] = {
    'mobilemamba-b4-fpn-ade20k': 'the only run on its schedule (Semantic FPN, 160k iterations)',
}


@dataclass(frozen=True)
class Point:
    """One evaluation of one run."""
    step: int            # epoch or iteration (the schedule's end for a final test)
    fraction: float      # step over the schedule's length
    value: float         # in points (the logged value x the group's scale)


@dataclass(frozen=True)
class EarlyPoint:
    """One row of the evidence: a group at a fraction f of its schedule."""
    group: str
    label: str
    runs: int
    f: float
    used: str                          # the evaluations used, e.g. 'epoch 30'
    tau: Optional[float]               # None when a run has no evaluation by f
    pairs: int                         # adjacent pairs in the final ranking
    gap_ratio_median: Optional[float]
    gap_ratio_min: Optional[float]
    gap_ratio_max: Optional[float]
    note: str = ''


@dataclass(frozen=True)
class PairGap:
    """One adjacent pair of the final ranking at a fraction f."""
    group: str
    f: float
    lower: str
    upper: str
    gap_at_f: float
    gap_final: float

    @property
    def ratio(self) -> float:
        return self.gap_at_f / self.gap_final if self.gap_final else math.nan


# --- the curves -----------------------------------------------------------------------------------
def schedule_length(ref: ReferenceRun) -> tuple[str, int]:
    """('epoch', max_epochs) or ('iter', max_iters): what a fraction of the schedule counts."""
    units = {e['unit'] for e in ref.evaluations}
    if 'epoch' in units:
        return 'epoch', int(ref.meta['max_epochs'])
    return 'iter', int(ref.meta['max_iters'])


def curve(ref: ReferenceRun, metric: str, scale: float = 1.0) -> list[Point]:
    """The run's evaluations of ``metric`` in order, in points; a test of the final model after
    the last training evaluation counts as the schedule's end when no evaluation is there."""
    unit, total = schedule_length(ref)
    points = [Point(int(e['step']), e['step'] / total, e['metrics'][metric] * scale)
              for e in ref.evaluations
              if e['step'] is not None and e['unit'] == unit and metric in e['metrics']]
    tests = [e for e in ref.evaluations if e['step'] is None and metric in e['metrics']]
    if tests and (not points or points[-1].step < total):
        points.append(Point(total, 1.0, tests[-1]['metrics'][metric] * scale))
    return points


def at_fraction(points: Sequence[Point], f: float) -> Optional[Point]:
    """The evaluation nearest at or before fraction ``f`` of the schedule (None: none yet)."""
    before = [p for p in points if p.fraction <= f + _EPS]
    return before[-1] if before else None


def final(points: Sequence[Point]) -> Point:
    """The evaluation at the end of the schedule (ValueError when the log stops earlier)."""
    if not points or points[-1].fraction < 1.0 - _EPS:
        raise ValueError('the log has no evaluation at the end of its schedule')
    return points[-1]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long sequences (nan when either is constant)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError('kendall_tau needs two sequences of the same length, at least 2')
    concordant = discordant = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue  # tied in both: in neither tau-b denominator term
            if dx == 0:
                tied_x += 1
            elif dy == 0:
                tied_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + tied_x)
                            * (concordant + discordant + tied_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def group_curves(group: Group) -> dict[str, list[Point]]:
    """Each run of the group: its curve, short name -> points."""
    return {name: curve(load_reference(ref_id), group.metric, group.scale)
            for name, ref_id in group.runs}


def final_order(curves: dict[str, list[Point]]) -> list[str]:
    """The runs from the lowest final value to the highest."""
    return sorted(curves, key=lambda n: final(curves[n]).value)


# --- the evidence ---------------------------------------------------------------------------------
def _used_text(unit: str, used: dict[str, Point]) -> str:
    word = 'epoch' if unit == 'epoch' else 'iteration'
    steps = {p.step for p in used.values()}
    if len(steps) == 1:
        return f'{word} {steps.pop():,}'
    return '; '.join(f'{name} {word} {p.step:,}' for name, p in used.items())


def pair_gaps(group: Group, fractions: Sequence[float] = FRACTIONS,
              curves: Optional[dict[str, list[Point]]] = None) -> list[PairGap]:
    """Each pair adjacent in the final ranking, at each fraction where both have a value."""
    curves = curves or group_curves(group)
    order = final_order(curves)
    found = []
    for f in fractions:
        for lower, upper in zip(order, order[1:]):
            a, b = at_fraction(curves[lower], f), at_fraction(curves[upper], f)
            if a is None or b is None:
                continue
            found.append(PairGap(group.name, f, lower, upper, b.value - a.value,
                                 final(curves[upper]).value - final(curves[lower]).value))
    return found


def group_evidence(group: Group, fractions: Sequence[float] = FRACTIONS) -> list[EarlyPoint]:
    curves = group_curves(group)
    names = [name for name, _ in group.runs]
    unit, _ = schedule_length(load_reference(group.runs[0][1]))
    ends = [final(curves[n]).value for n in names]
    gaps = pair_gaps(group, fractions, curves)
    rows = []
    for f in fractions:
        used = {n: at_fraction(curves[n], f) for n in names}
        missing = [n for n, p in used.items() if p is None]
        ratios = [g.ratio for g in gaps if g.f == f]
        if missing:
            rows.append(EarlyPoint(group.name, group.label, len(names), f,
                                   f'no evaluation by then: {", ".join(missing)}', None,
                                   len(names) - 1, None, None, None, group.note))
            continue
        rows.append(EarlyPoint(
            group.name, group.label, len(names), f, _used_text(unit, used),
            kendall_tau([used[n].value for n in names], ends), len(ratios),
            statistics.median(ratios), min(ratios), max(ratios), group.note))
    return rows


def evidence(fractions: Sequence[float] = FRACTIONS,
             groups: Sequence[Group] = GROUPS) -> list[EarlyPoint]:
    """The tidy table: one row per (group, fraction)."""
    return [row for group in groups for row in group_evidence(group, fractions)]


def tau_by_step(group: Group) -> list[tuple[float, float]]:
    """(fraction, Kendall tau against the final ranking) at every fraction where some run
    evaluated and every run has an evaluation at or before it, the schedule's end excluded."""
    curves = group_curves(group)
    names = [name for name, _ in group.runs]
    ends = [final(curves[n]).value for n in names]
    fractions = sorted({p.fraction for n in names for p in curves[n] if p.fraction < 1.0 - _EPS})
    found = []
    for f in fractions:
        used = [at_fraction(curves[n], f) for n in names]
        if all(used):
            found.append((f, kendall_tau([p.value for p in used], ends)))
    return found


def final_from(group: Group) -> Optional[float]:
    """The fraction of the schedule from which the ranking equals the final one at every later
    evaluation (:func:`tau_by_step`); None when it never does before the end."""
    found = None
    for fraction, tau in reversed(tau_by_step(group)):
        if tau != 1.0:
            break
        found = fraction
    return found


def final_gaps(group: Group) -> list[float]:
    """The final gaps between runs adjacent in the final ranking, in points."""
    curves = group_curves(group)
    values = [final(curves[n]).value for n in final_order(curves)]
    return [b - a for a, b in zip(values, values[1:])]


# --- rendering ------------------------------------------------------------------------------------
def _num(value: Optional[float], spec: str = '.2f') -> str:
    return '-' if value is None or math.isnan(value) else format(value, spec)


def render_markdown(rows: Sequence[EarlyPoint]) -> str:
    """The evidence as a markdown table, then each group's note and where its ranking settles."""
    lines = ['| group | metric | runs | f | evaluation used | Kendall tau | adjacent pairs | '
             'gap at f / final gap: median (range) |', '|---|---|---|---|---|---|---|---|']
    for r in rows:
        ratio = '-' if r.gap_ratio_median is None else (
            f'{r.gap_ratio_median:.2f} ({r.gap_ratio_min:.2f} to {r.gap_ratio_max:.2f})')
        lines.append(f'| {r.group} | {r.label} | {r.runs} | {r.f:g} | {r.used} | '
                     f'{_num(r.tau)} | {r.pairs} | {ratio} |')
    lines += ['']
    by_name = {g.name: g for g in GROUPS}
    for name in dict.fromkeys(r.group for r in rows):
        group = by_name.get(name)
        if group is None:
            continue
        unit, total = schedule_length(load_reference(group.runs[0][1]))
        word = 'epoch' if unit == 'epoch' else 'iteration'
        when = _settles_text(group)
        gaps = final_gaps(group)
        lines.append(f'- {name} ({", ".join(n for n, _ in group.runs)}; {group.note}): '
                     f'{when}; final gaps between adjacent runs '
                     f'{", ".join(f"{g:.1f}" for g in gaps)} points.')
    for ref_id, why in EXCLUDED.items():
        lines.append(f'- Not grouped: {ref_id}, {why}.')
    return '\n'.join(lines) + '\n'


def published_steps(table: AblationTable) -> list[float]:
    """The size of each published step a table's claims name, per metric, in points."""
    steps = []
    for claim in table.claims:
        better, worse = table.row(claim.better), table.row(claim.worse)
        for metric in claim.metrics or table.metrics:
            a, b = better.published.get(metric), worse.published.get(metric)
            if a is not None and b is not None:
                steps.append(abs(a - b))
    return steps


def _settles_text(group: Group) -> str:
    """'in the final order from epoch 20 of 300 (f = 0.067) on'."""
    unit, total = schedule_length(load_reference(group.runs[0][1]))
    settled = final_from(group)
    if settled is None:
        return 'in the final order only at the end'
    word = 'epoch' if unit == 'epoch' else 'iteration'
    return (f'in the final order from {word} {round(settled * total):,} of {total:,} '
            f'(f = {settled:.3f}) on')


def reduced_run_caveat(table: Optional[AblationTable] = None) -> str:
    """A few sentences for under a reduced-run table: what the official curves show and why that
    does not make a short run's ranking of ablation rows trustworthy. ``table``: whose published
    steps to compare with (default: every table's)."""
    imagenet = GROUPS[0]
    gaps = final_gaps(imagenet)
    at_tenth = [r for r in group_evidence(imagenet, (0.1, )) if r.gap_ratio_median is not None]
    # The official pair closest in the end: the nearest thing to an ablation step in the logs.
    closest = min(GROUPS, key=lambda g: min(final_gaps(g)))
    steps = published_steps(table) if table is not None else \
        [s for t in TABLES.values() for s in published_steps(t)]
    whose = f'{table.name}\'s' if table is not None else 'the tables\''
    text = (
        'Reduced runs rank rows; they do not reproduce cells. The official training logs show '
        'early rankings holding where runs are far apart: MobileMamba\'s six ImageNet runs '
        f'(model sizes; adjacent ones {min(gaps):.1f} to {max(gaps):.1f} top-1 points apart '
        f'at the end, '
        f'median {statistics.median(gaps):.1f}) are {_settles_text(imagenet)}. ')
    if steps:
        text += (f'Ablation steps are smaller: {whose} published steps are {min(steps):.1f} to '
                 f'{max(steps):.1f} points (median {statistics.median(steps):.1f}). ')
    text += (f'The closest official pair, {closest.name} ({" vs ".join(n for n, _ in closest.runs)}'
             f', {min(final_gaps(closest)):.1f} {closest.label} apart at the end), is '
             f'{_settles_text(closest)}. ')
    if at_tenth:
        text += (f'Gaps at an early point are not the final gaps: at a tenth of the ImageNet '
                 f'schedule they are {at_tenth[0].gap_ratio_median:.2f} times the final ones '
                 '(median over adjacent pairs). ')
    text += ('And an early point of a long schedule is not a short schedule: a run given a '
             'shorter schedule decays its learning rate within it and ends higher than the long '
             'run at the same epoch (Li et al., Budgeted Training, ICLR 2020), and rows may gain '
             'from that unequally. Treat a reduced-run ordering of rows closer than the seed '
             'noise as unresolved (docs/reduced_runs.md).')
    return text


def main(argv: Sequence[str]) -> int:
    """``python -m runs.logs.early_ranking [TABLE]``: the evidence table; with a table, the
    caveat for it after it (what docs/reduced_runs.md shows)."""
    import sys
    if len(argv) > 1 or (argv and argv[0] not in TABLES):
        print(f'early_ranking: error: unknown table {" ".join(argv)!r}; valid: '
              f'{", ".join(TABLES)}', file=sys.stderr)
        return 2
    print(render_markdown(evidence()), end='')
    if argv:
        print('\n' + reduced_run_caveat(TABLES[argv[0]]))
    return 0


if __name__ == '__main__':
    import sys
    sys.exit(main(sys.argv[1:]))
