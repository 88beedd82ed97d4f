"""The suite's independent references, as fixtures that FAIL (never skip) when one is missing.

The strongest tests hold our code against something we did not write: the official MambaVision
package (NVlabs' PyPI release), mamba-ssm's reference scan, PyWavelets, and the MobileMamba
fixture made with the official code. Each is pinned in requirements/pins.txt and installed by
tools/setup_env.sh, so a missing one is a broken install: the test that needs it fails with the
install step in its message, rather than vanishing as a skip and leaving the run green. Only
tests that need a CUDA device skip on a machine without one.
"""
from __future__ import annotations

import importlib
import os
import re
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PINS_FILE = REPO / 'requirements' / 'pins.txt'
MOBILEMAMBA_FIXTURE = REPO / 'tests' / 'fixtures' / 'mobilemamba_official_tiny.pt'
MOBILEMAMBA_CHECKPOINT = REPO / 'tests' / 'fixtures' / 'mobilemamba_official_tiny_ckpt_E.pth'


def read_pins(path: Path = PINS_FILE) -> dict[str, str]:
    """Runtime pins of requirements/pins.txt, {distribution: version}, read as tools/setup_env.sh
    reads them: `name==version` lines, comments dropped, `# build-only` lines and the optional
    section left out."""
    pins = {}
    for line in path.read_text().splitlines():
        if line.startswith('# --- optional'):  # the trackers' pins, installed on first use
            break
        if 'build-only' in line:
            continue
        m = re.match(r'^([A-Za-z0-9_.\-]+)==([^\s#]+)', line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def missing(what: str, dist: str, phase: str, exc: BaseException):
    """Fail the test: ``what`` (pinned as ``dist``) is not importable; say how to install it."""
    version = read_pins().get(dist, '?')
    pytest.fail(
        f'{what} is missing ({type(exc).__name__}: {exc}). It is an independent reference of '
        f'this test, so its absence is a failure, not a skip. Install it: ./run_all.sh setup '
        f'(tools/setup_env.sh {phase} installs {dist}=={version}); to repair an existing '
        f'environment: ./run_all.sh python -m pip install --no-deps {dist}=={version}',
        pytrace=False)


def require(module: str, dist: str, what: str, phase: str):
    """Import ``module`` or fail the test with the step that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(what, dist, phase, exc)


@pytest.fixture
def mamba_ssm_ref():
    """mamba-ssm's pure-PyTorch selective_scan_ref, imported through backbones/ops/mamba_shim.py
    (the one place that imports mamba-ssm: on CPU it is installed without its CUDA module)."""
    from backbones.ops import mamba_shim
    try:
        return mamba_shim.selective_scan_ref()
    except ImportError as exc:
        missing("mamba-ssm (its reference scan)", 'mamba-ssm', 'phase 5/6', exc)


@pytest.fixture
def official_mambavision(mamba_ssm_ref):
    """(the official ``mambavision.models.mamba_vision`` module, mamba-ssm's reference scan)."""
    require('timm', 'timm', 'timm (the official MambaVision package needs it)', 'phase 6/6')
    mv = require('mambavision.models.mamba_vision', 'mambavision',
                 "the official MambaVision package ('mambavision')", 'phase 6/6')
    return mv, mamba_ssm_ref


@pytest.fixture
def pywt():
    return require('pywt', 'PyWavelets', 'PyWavelets (pywt)', 'phase 4/6')


@pytest.fixture
def mobilemamba_fixture() -> dict:
    """The tiny MobileMamba made with the official code (weights, input, its logits)."""
    if not MOBILEMAMBA_FIXTURE.is_file():
        pytest.fail(f'{MOBILEMAMBA_FIXTURE.relative_to(REPO)} is missing: it is the official '
                    'MobileMamba reference; regenerate it with tools/make_mobilemamba_fixture.py '
                    '(see its docstring) and commit it', pytrace=False)
    import torch
    return torch.load(MOBILEMAMBA_FIXTURE, map_location='cpu', weights_only=True)


@pytest.fixture
def mobilemamba_official_checkpoint() -> Path:
    """The file the official MobileMamba trainer writes (its ``ckpt_E.pth``) for the fixture's
    model, written by the official trainer's own code."""
    if not MOBILEMAMBA_CHECKPOINT.is_file():
        pytest.fail(f'{MOBILEMAMBA_CHECKPOINT.relative_to(REPO)} is missing: it is the official '
                    'MobileMamba trainer\'s checkpoint file; regenerate it with '
                    'tools/make_mobilemamba_fixture.py (see its docstring) and commit it',
                    pytrace=False)
    return MOBILEMAMBA_CHECKPOINT


@pytest.fixture
def restore_signals():
    """engine.trainer installs its stop handlers in this process: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
    from engine import preemption
    preemption._STOP['signum'] = None


# --- no silent skip under CI ------------------------------------------------------------------
# A skip is evidence that did not run. Under CI (CI=true) a skip whose reason is not below fails
# the run; each allowed reason says why CI cannot run that test.
ALLOWED_SKIPS = {
    'no CUDA device': 'the CUDA kernel path: CI has no GPU (a lent GPU machine runs it)',
    'mamba-ssm built without CUDA kernels': 'mamba-ssm compiles its kernels only where nvcc '
                                            'and a GPU are',
    'no snapshot of the official repositories here': 'the byte-equal regeneration needs both '
        'official repositories; tests/test_reference_excerpts.py checks every extraction against '
        'committed excerpts in CI',
}
_SKIPPED: list[tuple[str, str]] = []


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason[len('Skipped: '):] if reason.startswith('Skipped: ') else reason


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, 'wasxfail'):
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def disallowed_skips(skipped: list[tuple[str, str]]) -> list[str]:
    return [f'{node}: {reason}' for node, reason in skipped
            if not any(reason.startswith(allowed) for allowed in ALLOWED_SKIPS)]


def pytest_sessionfinish(session, exitstatus):
    bad = disallowed_skips(_SKIPPED)
    if os.environ.get('CI', '').lower() in ('1', 'true', 'yes') and bad:
        reporter = session.config.pluginmanager.get_plugin('terminalreporter')
        if reporter is not None:
            reporter.write_line('skips outside the allowlist (tests/conftest.py ALLOWED_SKIPS) '
                                'fail CI:', red=True)
            for line in bad:
                reporter.write_line(f'  {line}', red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
