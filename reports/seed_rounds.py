"""``--seeds auto --max-seeds N``: a table's runs in rounds of seeds, every claim decided after
each round on the values the report reads (``runs.table.sequential``), until none is open.

Stateless: each decision replays every look from the runs on disk, so a round is the same
table command run again (locally in a loop; on SLURM as the job queued after the round's runs).
Each decision writes ``seed_rounds.json`` beside the runs, which ``status`` and the report read.
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ablations import METRICS, AblationTable
from runs import rundir
from runs.executors.follow_up import FollowUp
from runs.options import TableOptions
from runs.table import sequential as seq
from runs.table.orchestrate import run_table

from .parsing import collect

# Set in the environment of the SLURM job that decides after a round (the decision command).
DECISION_JOB = 'SEEDS_AUTO_DECISION'


def scoped_table(table: AblationTable, rows: Sequence[str], tasks: Sequence[str]
                 ) -> AblationTable:
    """The table's claims on the selected rows and tasks only: a pair whose metric no selected
    task measures could never resolve."""
    rows = set(rows) or {r.slug for r in table.rows}
    tasks = set(tasks) or set(table.tasks)
    claims = []
    for claim in table.claims:
        metrics = tuple(m for m in (claim.metrics or table.metrics) if METRICS[m].task in tasks)
        if metrics and {claim.better, claim.worse} <= rows:
            claims.append(replace(claim, metrics=metrics))
    return replace(table, claims=tuple(claims))


def seed_values(frame: pd.DataFrame, profile: str) -> dict[str, dict[str, list[float]]]:
    """``values[row][metric]``: the values of seeds 0, 1, ... up to the first seed without one
    (a failed or unfinished run ends the series: looks take the first n seeds of both rows)."""
    ok = frame[(frame['profile'] == profile) & (frame['status'] == 'ok')]
    values: dict[str, dict[str, list[float]]] = {}
    for (row, metric), group in ok.groupby(['row', 'metric']):
        by_seed = dict(zip(group['seed'], group['value']))
        series = []
        while len(series) in by_seed and not math.isnan(by_seed[len(series)]):
            series.append(float(by_seed[len(series)]))
        values.setdefault(row, {})[metric] = series
    return values


@dataclass(frozen=True)
class Decision:
    """Where the claims stand after the runs on disk, and what the next round trains."""
    verdicts: dict               # seq.Pair -> seq.Verdict
    seeds: int                   # seeds per row the next round asks for (0: none)
    runs: dict                   # row slug -> tasks of the next round (empty: done)
    values: int                  # values read: a round that adds none made no progress


def decide_claims(table: AblationTable, work_dir: Path, profile: str, max_seeds: int,
                  pick: str = 'paper') -> Decision:
    frame, _ = collect(work_dir, table, pick)
    values = seed_values(frame, profile)
    verdicts = seq.decide_table(table, values, max_seeds)
    todo = seq.rows_to_train(table, {p: v.decision for p, v in verdicts.items()})
    count = sum(len(series) for metrics in values.values() for series in metrics.values())
    if not todo:
        return Decision(verdicts, 0, {}, count)
    have = min((len(values.get(pair_row, {}).get(pair.metric, []))
                for pair, verdict in verdicts.items() if verdict.decision == seq.MORE_SEEDS
                for pair_row in (pair.claim.better, pair.claim.worse)), default=0)
    seeds = min(max_seeds, max(seq.MIN_SEEDS, have + 1))
    # det/seg start from their row's cls run of the same seed: it is part of the round
    runs = {row: tuple(t for t in table.tasks if t in tasks or t == 'cls')
            for row, tasks in todo.items()}
    return Decision(verdicts, seeds, runs, count)


def rounds_file(work_dir: Path, table: str, profile: str) -> Path:
    return rundir.table_root(work_dir, table) / profile / rundir.SEED_ROUNDS


def write_rounds(path: Path, table: AblationTable, decision: Decision, max_seeds: int,
                 round_: int) -> None:
    """What ``status`` and the report show: each pair's decision after the latest round."""
    def number(x: float) -> Optional[float]:  # JSON has no NaN: none yet
        return None if math.isnan(x) else x
    pairs = [dict(claim=p.claim.text, better=p.claim.better, worse=p.claim.worse,
                  metric=p.metric, paper_step=p.step, decision=v.decision, seeds=v.n,
                  diff=number(v.diff), stat=number(v.stat), bound=number(v.bound),
                  noise=v.noise, conditional_power=number(v.conditional_power))
             for p, v in decision.verdicts.items()]
    state = dict(table=table.name, max_seeds=max_seeds, round=round_,
                 next_seeds=decision.seeds, next_runs=decision.runs, values=decision.values,
                 pairs=pairs,
                 design=dict(rounds=seq.ROUNDS, spending=seq.SPENDING, variance=seq.VARIANCE,
                             futility=seq.FUTILITY, multiplicity=seq.MULTIPLICITY))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def read_rounds(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_rounds(table: AblationTable, options: TableOptions,
               decision_command: Sequence[str]) -> tuple[int, bool]:
    """Decide; train the next round; again, until no claim is open (local), or queue the next
    round with ``decision_command`` (this same table command) after it (SLURM). The exit status
    (1 when a run of a round failed, as the table command's) and whether every claim is decided
    (then the report is due)."""
    scoped = scoped_table(table, options.rows, options.tasks)
    if not scoped.claims:
        raise ValueError(f'--seeds auto: no claim of {table.name} has both rows among the '
                         f'selected rows and a metric among the selected tasks')
    profile, max_seeds = options.run_profile, options.max_seeds
    path = rounds_file(options.work_dir, table.name, profile)
    # a decision that follows a round (this loop's last one, or the SLURM job queued after it)
    followed = read_rounds(path) if os.environ.get(DECISION_JOB) else None
    status = 0
    while True:
        decision = decide_claims(scoped, options.work_dir, profile, max_seeds)
        if followed and followed.get('next_runs') and decision.runs and \
                followed.get('values') == decision.values:
            # without a new value the same round would be asked for again and again
            print(f'--seeds auto: round {followed["round"]} gave no new value (its runs '
                  f'failed?); stopping: see ./run_all.sh status {table.name}', flush=True)
            return 1, False
        previous = read_rounds(path)
        round_ = (previous or {}).get('round', 0) + (1 if decision.runs else 0)
        write_rounds(path, scoped, decision, max_seeds, round_)
        print(round_summary(scoped, decision, round_, max_seeds), flush=True)
        if not decision.runs:
            return status, True
        followed = read_rounds(path)
        groups: dict[tuple, list[str]] = {}
        for row, tasks in decision.runs.items():
            groups.setdefault(tasks, []).append(row)
        slurm = options.launcher == 'slurm'
        for i, (tasks, rows) in enumerate(sorted(groups.items())):
            last = i == len(groups) - 1
            step = replace(options, rows=tuple(rows), tasks=tasks, seeds=decision.seeds,
                           report=False, dry_run=False)
            # SLURM: after the round's runs, this same command decides again (as a job)
            status = max(status, run_table(table, step, FollowUp(
                decision_command, 'decision', 'decides the next round or writes the report')
                if slurm and last else None))
        if slurm or status:  # SLURM: the queued decision job goes on; a failed run stops
            return status, False


def round_summary(table: AblationTable, decision: Decision, round_: int, max_seeds: int) -> str:
    counts = Counter(v.decision for v in decision.verdicts.values())
    done = ', '.join(f'{n} {d}' for d, n in counts.most_common())
    if not decision.runs:
        return f'{table.name}: every claim decided (max {max_seeds} seeds): {done}'
    rows = ', '.join(f'{r} ({"+".join(t)})' for r, t in sorted(decision.runs.items()))
    return (f'{table.name}: round {round_} of at most {max_seeds - seq.MIN_SEEDS + 1}: '
            f'{done}; seeds 0-{decision.seeds - 1} of {rows}')


def rounds_section(state: dict, smoke: bool) -> list[str]:
    """The report's lines on how --seeds auto decided each claim, and why it stopped."""
    out = ['## Seeds until each claim resolves (--seeds auto)', '',
           f'At most {state["max_seeds"]} seeds per row; {state["round"]} round(s) trained.', '',
           *(f'- {what}: {state["design"][key]}.' for what, key in (
               ('Rounds', 'rounds'), ('Design', 'spending'), ('Unknown noise', 'variance'),
               ('Futility', 'futility'), ('Several claims', 'multiplicity'))), '']
    if smoke:
        out += ['Smoke runs: these decisions exercise the rounds on generated data; they are '
                'not evidence.', '']
    lines = ['| claim | metric | decision | seeds/row | step | t (or z) | boundary | why |',
             '|---|---|---|---|---|---|---|---|']
    for pair in state['pairs']:
        lines.append('| ' + ' | '.join([
            pair['claim'], METRICS[pair['metric']].label, pair['decision'], str(pair['seeds']),
            _num(pair['diff'], '+.2f'), _num(pair['stat'], '.2f'), _num(pair['bound'], '.2f'),
            _why(pair, state['max_seeds'])]) + ' |')
    return out + lines + ['']


def _num(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def _why(pair: dict, max_seeds: int) -> str:
    decision = pair['decision']
    if decision in (seq.REPRODUCED, seq.CONTRADICTED):
        return f'|t| {abs(pair["stat"]):.2f} crossed {pair["bound"]:.2f} at {pair["seeds"]} seeds'
    if decision == seq.FUTILE:
        if pair['seeds'] >= max_seeds:
            return f'still open at the last look ({max_seeds} seeds)'
        return (f'conditional power {pair["conditional_power"]:.2f} < {seq.FUTILITY_CP} at the '
                f'paper\'s step: cannot resolve within {max_seeds} seeds')
    return 'open: the next round adds a seed'
