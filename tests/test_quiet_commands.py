"""Commands print what they mean: a dry run, ``status``, ``doctor`` and ``report`` print only their
own lines.

Building a row's configs and models imports mmdet and mmseg and builds their losses, which warn
(deprecations, defaults) and log INFO lines; the commands that only build configs silence those
(``runs.console.quiet_toolkits``). Run through ``run_all.sh`` as a user runs it, stdout and stderr both.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Every line a dry run prints (runs/table/orchestrate.py: dry_run), and nothing else.
DRY_RUN_LINES = [
    r'\[\d+/\d+\] \S+/seed\d+ \(GPUs \d+(, after \S+)?\)',
    r'    (recipe|deviation|checkpoints|plan|official run|layout|config does not build): .+',
    r'  sbatch( --\S+)+',
    r'  (srun --kill-on-bad-exit=1 )?\S*python\S* -u -m engine\.trainer \S+/config\.py '
    r'--work-dir \S+ --resume( --launcher \S+)?',
    r'checkpoints of these \d+ runs: .+ kept, .+ at peak',
]


def _foreign(text: str, patterns: list[str]) -> list[str]:
    return [line for line in text.splitlines()
            if not any(re.fullmatch(p, line) for p in patterns)]


@pytest.mark.slow
def test_dry_run_of_table4_prints_only_its_own_lines(tmp_path):
    # One row builds all three tasks' configs and models (mmpretrain, mmdet, mmseg: where the
    # warnings come from); the full profile under SLURM prints every kind of line a dry run has.
    out = subprocess.run([str(REPO / 'run_all.sh'), 'table4', '--rows', 'conv2-concat',
                          '--profile', 'full', '--launcher', 'slurm', '--dry-run',
                          '--work-dir', str(tmp_path / 'work')],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.returncode == 0, out.stdout
    assert _foreign(out.stdout, DRY_RUN_LINES) == [], out.stdout
    # and it did describe the three runs
    assert len(re.findall(r'^\[\d/3\] ', out.stdout, re.M)) == 3, out.stdout
    assert re.search(r'^  sbatch ', out.stdout, re.M) and 'official run: ' in out.stdout


@pytest.mark.slow
def test_report_prints_only_its_own_lines(tmp_path):
    """The report builds every row's model for the params/FLOPs column: mmpretrain's INFO lines
    ("Because batch augmentations are enabled...") stay out of its output."""
    import json
    run = tmp_path / 'work' / 'table4' / 'smoke' / 'conv2-concat' / 'cls' / 'seed0'
    (run / '20250102_100000' / 'vis_data').mkdir(parents=True)
    (run / 'run.json').write_text(json.dumps(dict(
        table='table4', row='conv2-concat', task='cls', seed=0, profile='smoke',
        status='finished', returncode=0, started='2025-01-02T10:00:00')))
    (run / '20250102_100000' / '20250102_100000.log').write_text('mmengine text log\n')
    (run / '20250102_100000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps({'accuracy/top1': 50.0, 'step': 1}) + '\n')
    out = subprocess.run([str(REPO / 'run_all.sh'), 'report', 'table4', '--work-dir',
                          str(tmp_path / 'work'), '--out', str(tmp_path / 'out')],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.returncode == 0, out.stdout
    assert _foreign(out.stdout, [r'wrote \S+', r'warning: .+']) == [], out.stdout
    assert 'GFLOPs' in (tmp_path / 'out' / 'table4.md').read_text()  # the models were built
