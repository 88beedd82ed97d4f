"""Trackers a run streams to besides its local logs (``--vis``), through mmengine's own backends.

Only TensorBoard so far: each run logs to ``<run dir>/tensorboard/``, one folder whatever its
attempts, so a resumed or requeued run appends to the same TensorBoard run (one unbroken curve)
where mmengine's default would start a new timestamped folder per attempt. The local logs are
unchanged (the reporter keeps reading them) and the config hash leaves the trackers out: a run
is the same run with or without them. W&B and MLflow are not wired yet (issue 22).

A tracker's package stays out of the default set-up: it is installed into the environment on
first use (the pins as constraints, so nothing pinned moves), or named in a one-line error.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from runs import REPO, split_csv

TRACKERS = ('tensorboard',)
PACKAGES = dict(tensorboard='tensorboard')
TENSORBOARD_DIR = 'tensorboard'


def parse_vis(value: str | None) -> list[str]:
    """``tensorboard`` (comma-separated) -> the trackers; ValueError naming the valid ones."""
    trackers = split_csv(value)
    bad = [t for t in trackers if t not in TRACKERS]
    if bad:
        raise ValueError(f'unknown tracker(s) {", ".join(bad)} in --vis; valid: '
                         f'{", ".join(TRACKERS)}')
    return list(dict.fromkeys(trackers))


def ensure_installed(trackers: Sequence[str]) -> None:
    """Install the trackers' missing packages into this environment, with the pins as
    constraints; ValueError (one line) when that fails."""
    missing = [PACKAGES[t] for t in trackers if importlib.util.find_spec(PACKAGES[t]) is None]
    if not missing:
        return
    # pip constraints cannot hold two pins of one name: drop the build-only ones.
    pins = [line for line in (REPO / 'requirements' / 'pins.txt').read_text().splitlines()
            if 'build-only' not in line]
    with tempfile.NamedTemporaryFile('w', suffix='.txt') as constraints:
        constraints.write('\n'.join(pins) + '\n')
        constraints.flush()
        print(f'--vis: installing {", ".join(missing)} into this environment (first use)',
              flush=True)
        out = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',
                              '--disable-pip-version-check', '-c', constraints.name, *missing],
                             capture_output=True, text=True)
    importlib.invalidate_caches()
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ['no output'])[-1]
        raise ValueError(f'--vis needs {", ".join(missing)}, and pip could not install it '
                         f'({last}); install it with ./run_all.sh python -m pip install '
                         f'{" ".join(missing)}')


def add_trackers(cfg, run_dir: Path, trackers: Sequence[str]) -> None:
    """Add the trackers' mmengine backends to the config's visualizer (after the config hash
    was taken: trackers are not part of a run's identity)."""
    if not trackers:
        return
    visualizer = cfg.get('visualizer') or dict(type='Visualizer')
    backends = [b for b in visualizer.get('vis_backends') or []
                if b.get('type') != 'TensorboardVisBackend']
    if 'tensorboard' in trackers:
        backends.append(dict(type='TensorboardVisBackend',
                             save_dir=str(Path(run_dir) / TENSORBOARD_DIR)))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer
