"""Under CI a skip outside conftest's allowlist fails the run, whatever else passed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('reason, ci, code', [
    ('mmpretrain not installed', 'true', 1),   # a broken install must not pass as a skip
    ('mmpretrain not installed', '', 0),       # outside CI a skip is reported, not failed
    ('no CUDA device', 'true', 0),             # allowed: CI has no GPU
])
def test_a_skip_fails_ci_unless_allowed(reason, ci, code):
    probe = REPO / 'tests' / f'test_zz_skip_probe_{os.getpid()}.py'
    probe.write_text('import pytest\n\n\ndef test_probe():\n'
                     f'    pytest.skip({reason!r})\n')
    try:
        out = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                              str(probe)], cwd=REPO, capture_output=True, text=True,
                             env=dict(os.environ, CI=ci))
    finally:
        probe.unlink()
    assert out.returncode == code, out.stdout + out.stderr
    assert ('skips outside the allowlist' in out.stdout) == (code == 1), out.stdout
