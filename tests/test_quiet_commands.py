"""Commands print what they mean: a dry run, ``status`` and ``doctor`` print only their own lines.

Building a row's configs and models imports mmdet and mmseg and builds their losses, which warn
(deprecations, defaults) and log INFO lines; the commands that only build configs silence those
(``runs.quiet_toolkits``). Run through ``run_all.sh`` as a user runs it, stdout and stderr both.
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
    r'    (recipe|deviation|checkpoints|plan|official run|config does not build): .+',
    r'  sbatch( --\S+)+',
    r'  \S*python\S* -u \S+/tools/train\.py \S+/config\.py --work-dir \S+ --resume',
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
