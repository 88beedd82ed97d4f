"""``--seeds auto --max-seeds N`` (issue 30): the claims decided after each round on the values
the report reads, the next round only for the rows of open claims, the report and status saying
where each claim stopped and why.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ablations import get_table
from reports.seed_rounds import decide_claims, rounds_file, scoped_table, seed_values
from runs.table import sequential as seq
from test_reports import T1, seed_dir, train_line, val_line, write_run_json, write_scalars

REPO = Path(__file__).resolve().parent.parent
TABLE4 = get_table('table4')
ROWS = ('regular-noconv2', 'causal-noconv2')  # the claim 'regular conv1 > causal conv1'


def plant(root: Path, values: dict[str, list[float]], profile: str = 'full') -> None:
    for row, seeds in values.items():
        for seed, value in enumerate(seeds):
            d = seed_dir(root, row, 'cls', seed, profile=profile)
            write_run_json(d)
            write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': value})])


def test_the_scope_is_the_claims_the_selection_can_decide():
    scoped = scoped_table(TABLE4, ROWS, ('cls',))
    assert [(c.better, c.worse, c.metrics) for c in scoped.claims] == \
        [('regular-noconv2', 'causal-noconv2', ('top1',))]
    assert len(scoped_table(TABLE4, (), ()).claims) == len(TABLE4.claims)


def test_a_series_ends_at_the_first_seed_without_a_value(tmp_path):
    import pandas as pd
    frame = pd.DataFrame(dict(row=['a'] * 3, metric=['top1'] * 3, seed=[0, 1, 3],
                              value=[1.0, 2.0, 4.0], status=['ok'] * 3, profile=['full'] * 3))
    assert seed_values(frame, 'full') == {'a': {'top1': [1.0, 2.0]}}


def test_rounds_decide_from_the_runs_on_disk(tmp_path):
    """Two seeds a row: far apart is reproduced at the first look and nothing trains next; close
    stays open and the next round asks for seed 2 of both rows, cls only."""
    scoped = scoped_table(TABLE4, ROWS, ('cls',))
    work = tmp_path / 'work_dirs'
    plant(work, {'regular-noconv2': [0.80, 0.801], 'causal-noconv2': [0.70, 0.701]})
    decision = decide_claims(scoped, work, 'full', max_seeds=3)
    [verdict] = decision.verdicts.values()
    assert (verdict.decision, verdict.n, decision.runs) == (seq.REPRODUCED, 2, {})

    work = tmp_path / 'close'
    plant(work, {'regular-noconv2': [0.800, 0.810], 'causal-noconv2': [0.799, 0.808]})
    decision = decide_claims(scoped, work, 'full', max_seeds=6)
    [verdict] = decision.verdicts.values()
    assert verdict.decision == seq.MORE_SEEDS
    assert decision.seeds == 3 and decision.runs == {r: ('cls',) for r in ROWS}
    assert decision.values == 4


@pytest.mark.slow
def test_smoke_seeds_auto_stops_per_claim_and_says_why(tmp_path):
    """The issue's 'done when': a smoke --seeds auto --max-seeds 3 run of two rows trains
    rounds until its claim is decided; the report and status say where it stopped and why."""
    work, out = tmp_path / 'work', tmp_path / 'reports'
    done = subprocess.run(
        [sys.executable, '-m', 'tools.run_table', 'table4', '--rows', ','.join(ROWS),
         '--tasks', 'cls', '--seeds', 'auto', '--max-seeds', '3', '--work-dir', str(work),
         '--report-dir', str(out), '--jobs', '2'],  # a round's runs two at a time
        cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'table4: round 1 of at most 2' in done.stdout
    state = json.loads(rounds_file(work, 'table4', 'smoke').read_text())
    [pair] = state['pairs']
    assert pair['decision'] in (seq.REPRODUCED, seq.CONTRADICTED, seq.FUTILE)
    trained = sorted(p.parents[1].name + '/' + p.name
                     for p in (work / 'table4' / 'smoke').glob('*/cls/seed*'))
    # seeds 0-1 of both rows, then one seed more per round while the claim is open
    assert trained == sorted(f'{row}/seed{k}' for row in ('causal-noconv2', 'regular-noconv2')
                             for k in range(pair['seeds']))
    assert f'table4: every claim decided (max 3 seeds): 1 {pair["decision"]}' in done.stdout
    report = (out / 'table4' / 'table4.md').read_text()
    section = report[report.index('## Seeds until each claim resolves'):]
    assert 'not evidence' in section and "O'Brien-Fleming" in section
    line = next(l for l in section.splitlines() if l.startswith('| regular conv1'))
    assert f'| {pair["decision"]} | {pair["seeds"]} |' in line
    assert line.rstrip(' |').rsplit('| ', 1)[1] not in ('', '-')  # the why
    status = subprocess.run([sys.executable, '-m', 'tools.status', 'table4', '--work-dir',
                             str(work)], cwd=REPO, capture_output=True, text=True)
    assert f'--seeds auto (smoke, at most 3 seeds): round {state["round"]}' in status.stdout
    assert f'regular conv1 > causal conv1 [top1]: {pair["decision"]}' in status.stdout


@pytest.mark.parametrize('args, message', [
    (['--seeds', 'auto', '--max-seeds', '1'], '--max-seeds must be at least 2'),
    (['--seeds', 'some'], "--seeds 'some' must be a whole number >= 1 or auto"),
    (['--seeds', '0'], "--seeds '0' must be a whole number >= 1 or auto"),
])
def test_bad_seed_options_are_one_line_and_exit_2(args, message, capsys):
    from tools import run_table
    with pytest.raises(SystemExit) as exit_:
        run_table.parse_args(['table4', *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_on_slurm_a_decision_job_follows_each_round(tmp_path):
    """--launcher slurm: the table command queues round 1 and, after its runs, a decision job
    (the same command) that decides, queues the next round or, with every claim decided,
    writes the report; nothing waits on the login node."""
    import time
    from test_slurm import _require_cluster
    _require_cluster()
    work, out = tmp_path / 'work', tmp_path / 'reports'
    done = subprocess.run(
        [sys.executable, '-m', 'tools.run_table', 'table4', '--rows', ','.join(ROWS),
         '--tasks', 'cls', '--seeds', 'auto', '--max-seeds', '3', '--launcher', 'slurm',
         '--work-dir', str(work), '--report-dir', str(out)], cwd=REPO, capture_output=True,
        text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count('queued as SLURM job') == 5  # 4 runs, then the decision
    # the decision job is named as what it is, not as a report
    assert re.search(r'^  decision: queued as SLURM job \d+ \(after all runs end\); decides the '
                     r'next round or writes the report$', done.stdout, re.M), done.stdout
    script = (work / 'table4' / 'smoke' / 'decision.sbatch').read_text()
    assert '#SBATCH --job-name=table4-decision' in script, script
    report = out / 'table4' / 'table4.md'
    deadline = time.monotonic() + 1200
    while not report.exists():
        assert time.monotonic() < deadline, 'the decision job never wrote the report'
        time.sleep(2)
    state = json.loads(rounds_file(work, 'table4', 'smoke').read_text())
    assert state['next_runs'] == {} and state['round'] >= 1
    decisions = sorted((work / 'table4' / 'smoke').glob('decision-*.out'))
    assert len(decisions) == state['round']  # one decision job after each round
    assert 'every claim decided' in decisions[-1].read_text()
    assert '## Seeds until each claim resolves' in report.read_text()
