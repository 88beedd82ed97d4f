"""What a plan's runs would tell for what they cost: the section "What you learn for what it
costs" of ``plan.md`` (``./run_all.sh plan <table> --schedule-scale 0.1,1 --subset none,in100
--seeds 3,auto --max-seeds 5``), also printed by the command.

One line per (schedule scale, subset, seeds) the plan was asked for:

- the table's GPU-hours at each planned GPU count: with N seeds, N x the planned runs' (one
  seed each, ``runs.commands.planner``); with ``auto``, the expected seeds of each (row, task)
  under the sequential design (``runs.table.sequential.expected_seed_runs``: planted trials with
  the paper's numbers as true means and each metric's prior SD as the seed spread) x its
  GPU-hours, and the most it can cost (every claim row to max-seeds); auto trains only the rows
  of a claim;
- per claim-metric pair of the planned rows and tasks (``reports.seed_rounds.scoped_table``),
  the probability of resolving it at the paper's step and the metric's prior SD: with N seeds
  the power of the report's test (``reports.stats.power``); with ``auto``, the design's chance
  of ``reproduced`` at max-seeds (``runs.table.sequential.design_power``).

Both assume the paper's full-schedule step and a full run's seed spread: a reduced run may
show neither (``runs.logs.early_ranking.reduced_run_caveat``, docs/reduced_runs.md).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from ablations import METRICS, AblationTable
from runs.commands.planner import estimate_at
from runs.logs.early_ranking import reduced_run_caveat
from runs.table import sequential as seq

from . import stats
from .seed_rounds import scoped_table

AUTO = 'auto'
TITLE = 'What you learn for what it costs'


def pair_probability(step: Optional[float], sd: Optional[float], seeds: Union[int, str],
                     max_seeds: Optional[int] = None) -> Optional[float]:
    """The chance of resolving a claim-metric pair whose true step is the paper's ``step``
    and per-seed SD ``sd``: with ``seeds`` N, the power of the report's test; with ``auto``,
    the sequential design's chance of ``reproduced`` at ``max_seeds``. None without a
    published step or a prior SD."""
    if step is None or sd is None:
        return None
    if seeds == AUTO:
        return seq.design_power(abs(step), sd, max_seeds)
    return stats.power(step, sd, int(seeds))


def _planned(plan: dict) -> tuple[list[str], list[str]]:
    """The rows and tasks of the plan's runs, in the plan's order."""
    rows, tasks = [], []
    for name in plan['runs']:
        row, task = name.rsplit('/', 1)
        rows += [row] if row not in rows else []
        tasks += [task] if task not in tasks else []
    return rows, tasks


def _profile_runs(plan: dict, profile: str) -> dict[str, dict]:
    if profile == plan.get('profile', 'full'):
        return plan['runs']
    return plan['profiles'][profile]['runs']


def _cost(runs: dict[str, dict], seeds: Union[int, str], gpus: int,
          expected: dict[tuple[str, str], float], max_seeds: Optional[int]) -> dict:
    """GPU-hours at ``gpus`` GPUs per run and seed-runs of one (profile, seeds) line."""
    if seeds != AUTO:
        hours = [estimate_at(entry, gpus) for entry in runs.values()]
        done = [h['gpu_hours'] for h in hours if h is not None]
        return dict(seed_runs=seeds * len(done), gpu_hours=seeds * sum(done),
                    runs_not_estimated=len(hours) - len(done))
    seed_runs = seed_runs_max = gpu_hours = gpu_hours_max = 0.0
    missing = []
    for (slug, task), n in expected.items():
        entry = runs.get(f'{slug}/{task}')
        est = estimate_at(entry, gpus) if entry else None
        if est is None:
            missing.append(f'{slug}/{task}')
            continue
        seed_runs += n
        seed_runs_max += max_seeds
        gpu_hours += n * est['gpu_hours']
        gpu_hours_max += max_seeds * est['gpu_hours']
    return dict(seed_runs=seed_runs, seed_runs_max=seed_runs_max, gpu_hours=gpu_hours,
                gpu_hours_max=gpu_hours_max, runs_not_estimated=len(missing),
                not_estimated=missing)


def learn(plan: dict, table: AblationTable, seeds: Sequence[Union[int, str]],
          max_seeds: int = seq.DEFAULT_MAX_SEEDS) -> dict:
    """The section's numbers for a written plan (``runs.commands.planner.plan_table``'s dict,
    its ``reductions`` and ``profiles``), and its ``markdown``. ``seeds``: N and/or 'auto'."""
    rows, tasks = _planned(plan)
    scoped = scoped_table(table, rows, tasks)
    pairs = seq.pairs(scoped)
    planned = {(p.claim.better, p.claim.worse, p.metric) for p in pairs}
    left_out = [p for p in seq.pairs(table)
                if (p.claim.better, p.claim.worse, p.metric) not in planned]
    expected = seq.expected_seed_runs(scoped, max_seeds) if AUTO in seeds and pairs else {}
    keys = [f'P{i}' for i in range(1, len(pairs) + 1)]
    lines = []
    for profile in plan.get('reductions') or [plan.get('profile', 'full')]:
        runs = _profile_runs(plan, profile)
        for n in seeds:
            line = dict(profile=profile, seeds=n, max_seeds=max_seeds if n == AUTO else None,
                        cost={str(g): _cost(runs, n, g, expected, max_seeds)
                              for g in plan['gpus']},
                        probability={key: pair_probability(
                            p.step, METRICS[p.metric].prior_sd, n, max_seeds)
                            for key, p in zip(keys, pairs)})
            lines.append(line)
    out = dict(
        lines=lines, trials=seq.EXPECTED_TRIALS if expected else None,
        pairs=[dict(key=key, claim=p.claim.text, better=p.claim.better, worse=p.claim.worse,
                    metric=p.metric, step=p.step, prior_sd=METRICS[p.metric].prior_sd)
               for key, p in zip(keys, pairs)],
        left_out=[dict(claim=p.claim.text, metric=p.metric) for p in left_out])
    out['markdown'] = render(out, plan, table)
    return out


def _p(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def _seeds_text(line: dict) -> str:
    return f'auto, max {line["max_seeds"]}' if line['seeds'] == AUTO else str(line['seeds'])


def _runs_text(cost: dict) -> str:
    if 'seed_runs_max' in cost:
        return f'{cost["seed_runs"]:.1f} expected (max {cost["seed_runs_max"]:.0f})'
    return str(cost['seed_runs'])


def _hours_text(cost: dict) -> str:
    text = f'{cost["gpu_hours"]:,.1f}'
    if 'gpu_hours_max' in cost:
        text += f' expected (max {cost["gpu_hours_max"]:,.1f})'
    if cost['runs_not_estimated']:
        text += f'; {cost["runs_not_estimated"]} run(s) not estimated'
    return text


def render(learned: dict, plan: dict, table: AblationTable) -> str:
    """The section in markdown."""
    gpus = plan['gpus']
    keys = [p['key'] for p in learned['pairs']]
    first = str(gpus[0])
    out = [f'## {TITLE}', '',
           f'The planned runs\' GPU-hours for each schedule, subset and seeds, and the '
           f'probability of resolving each claim-metric pair of the planned rows and tasks '
           f'({", ".join(keys) or "none"}, below).', '',
           '| profile | seeds | seed-runs | '
           + ' | '.join(f'GPU-h @{g} GPUs' for g in gpus)
           + ''.join(f' | {k}' for k in keys) + ' |',
           '|---|---|---|' + '---|' * (len(gpus) + len(keys))]
    for line in learned['lines']:
        cells = [line['profile'], _seeds_text(line), _runs_text(line['cost'][first])]
        if line['seeds'] == AUTO and not keys:
            cells[2] = '0: no claim has both its rows and its task here'
        cells += [_hours_text(line['cost'][str(g)]) for g in gpus]
        cells += [_p(line['probability'][k]) for k in keys]
        out.append('| ' + ' | '.join(cells) + ' |')
    out.append('')
    for p in learned['pairs']:
        step = '-' if p['step'] is None else f'{p["step"]:+.2f}'
        out.append(f'- {p["key"]}: {p["claim"]}, {METRICS[p["metric"]].label}: paper step '
                   f'{step}, prior SD {p["prior_sd"]}')
    if learned['left_out']:
        out.append(f'- Not resolvable by the planned rows and tasks ({len(learned["left_out"])} '
                   f'pair(s) of {table.name}; plan their rows and tasks with --rows/--tasks): '
                   + '; '.join(f'{p["claim"]} [{p["metric"]}]' for p in learned['left_out']))
    missing = sorted({name for line in learned['lines']
                      for name in line['cost'][first].get('not_estimated', [])})
    if missing:
        out.append(f'- auto trains runs this plan did not estimate (a det/seg seed starts from '
                   f'its row\'s cls run): {", ".join(missing)}; its hours leave them out.')
    out += ['', 'How: with N seeds, N x every planned run, and the power of the report\'s test '
            '(two-sided two-sample t at alpha 0.05; one seed a row: the prior SD as known, '
            'normal; reports/stats.py). With auto, the group-sequential design\'s chance of '
            '"reproduced" at max-seeds (known SD; runs/table/sequential.py) and its expected '
            'seed-runs']
    if learned['trials']:
        out[-1] += (f' from {learned["trials"]:,} planted trials (fixed seed): the paper\'s '
                    f'numbers as true means, each metric\'s prior SD as the seed spread; auto '
                    f'trains only the rows of a claim, a det/seg seed with its row\'s cls seed; '
                    f'max: every claim row\'s runs to max-seeds')
    out[-1] += '.'
    out += ['', 'These probabilities assume the paper\'s full-schedule step and a full run\'s '
            'seed spread (the prior SD). A reduced run may show neither: gaps at a fraction of '
            'a schedule are not the final gaps (docs/reduced_runs.md, "What the official '
            'curves say").']
    if any(line['profile'] != plan.get('profile', 'full') for line in learned['lines']):
        out += ['', '> ' + reduced_run_caveat(table)]
    return '\n'.join(out) + '\n'
