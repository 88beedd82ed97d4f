"""`stale` beyond a flag change, without training: records written with runs.rundir.identity's own hash.

A det run is stale when the cls run it started from was rerun since, or is itself stale; the
report then shows `stale` in place of the det run's numbers. (A flag change, and --rerun-stale,
run end to end in test_runner.py::test_smoke_runs_learn_skip_resume_record_failures_and_go_stale.)
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runs import rundir
from ablations import METRICS, get_table
from tools import report as cli
from runs.rundir.identity import run_config, stale_reason
from test_reports import (TABLE, T1, md_table, seed_dir, train_line, val_line, write_run_json,
                          write_scalars)

ROW = 'conv2-concat'


def _plant(root: Path, *, cls_gpus: int = 1, det_upstream: str | None = None):
    """A finished cls run and the det run that started from it, hashed as the runner hashes
    them. ``cls_gpus``: the GPUs its record says it ran on (its hash is always of 1 GPU);
    ``det_upstream``: the cls hash the det run records having started from (default: the cls
    run's own)."""
    cls_key = rundir.RunKey.train(TABLE, 'smoke', ROW, 'cls', 0)
    det_key = rundir.RunKey.train(TABLE, 'smoke', ROW, 'det', 0)
    cls_dir, det_dir = seed_dir(root, ROW, 'cls', 0), seed_dir(root, ROW, 'det', 0)
    _, cls_hash = run_config(cls_key, data_root=None, work_dir=None, gpus=1)
    write_run_json(cls_dir)
    write_scalars(cls_dir, T1, [train_line(1), val_line(1, **{'accuracy/top1': 70.0})])
    rundir.write_record(cls_dir, config_hash=cls_hash, gpus=cls_gpus)
    upstream = det_upstream or cls_hash
    pretrained = cls_dir / rundir.HANDOVER
    _, det_hash = run_config(det_key, data_root=None, work_dir=None, gpus=1,
                             pretrained=pretrained, upstream=upstream)
    write_run_json(det_dir)
    write_scalars(det_dir, T1, [train_line(1), val_line(
        1, **{'coco/bbox_mAP': 0.321, 'coco/segm_mAP': 0.301})])
    rundir.write_record(det_dir, config_hash=det_hash, upstream_hash=upstream, gpus=1,
                        pretrained=str(pretrained))
    return (cls_key, cls_dir), (det_key, det_dir), cls_hash


def _det_cell(tmp_path: Path, monkeypatch, code: int = 0) -> str:
    """The report's box AP cell of ROW (``code``: the report's exit status, 1 when no run of the
    table gave a current value)."""
    monkeypatch.chdir(tmp_path)
    assert cli.main([TABLE, '--out', 'out', '--no-complexity']) == code
    cells = md_table((tmp_path / 'out' / f'{TABLE}.md').read_text())
    name = get_table(TABLE).row(ROW).name
    (row, ) = [v for k, v in cells.items() if k.startswith(name)]
    return row[METRICS['box_ap'].label]


@pytest.mark.slow
def test_det_run_is_current_while_its_cls_run_is(tmp_path, monkeypatch):
    (cls_key, cls_dir), (det_key, det_dir), _ = _plant(tmp_path / 'work_dirs')
    assert stale_reason(cls_key, cls_dir, rundir.read_record(cls_dir)) is None
    assert stale_reason(det_key, det_dir, rundir.read_record(det_dir)) is None
    cell = _det_cell(tmp_path, monkeypatch)
    assert cell.startswith('32.1') and 'stale' not in cell


@pytest.mark.slow
def test_det_run_is_stale_when_its_cls_run_was_rerun(tmp_path, monkeypatch):
    (cls_key, cls_dir), (det_key, det_dir), _ = _plant(tmp_path / 'work_dirs',
                                                        det_upstream='0' * 16)
    assert stale_reason(cls_key, cls_dir, rundir.read_record(cls_dir)) is None  # the rerun is fine
    assert stale_reason(det_key, det_dir, rundir.read_record(det_dir)) == \
        'the classification run it started from was rerun since'
    cell = _det_cell(tmp_path, monkeypatch)
    assert 'stale' in cell and '32.1' not in cell


@pytest.mark.slow
def test_det_run_is_stale_when_its_cls_run_is(tmp_path, monkeypatch):
    cls_key = rundir.RunKey.train(TABLE, 'smoke', ROW, 'cls', 0)
    # At 2 GPUs the smoke recipe keeps its global batch with another per-GPU batch: another hash.
    assert run_config(cls_key, data_root=None, work_dir=None, gpus=2)[1] != \
        run_config(cls_key, data_root=None, work_dir=None, gpus=1)[1]
    (cls_key, cls_dir), (det_key, det_dir), _ = _plant(tmp_path / 'work_dirs', cls_gpus=2)
    assert stale_reason(cls_key, cls_dir, rundir.read_record(cls_dir)) == \
        'its config changed since it ran'
    assert stale_reason(det_key, det_dir, rundir.read_record(det_dir)) == \
        'the classification run it started from is stale'
    cell = _det_cell(tmp_path, monkeypatch, code=1)  # both runs stale: no current value
    assert 'stale' in cell and '32.1' not in cell


@pytest.mark.slow
def test_a_config_only_hashed_loads_no_toolkit_models():
    """status and the report rebuild each finished run's config to hash it: without importing
    its custom_imports (mmpretrain's models, and through them mmdet's), and to the same hash as
    the config a training imports."""
    code = '\n'.join([
        'import sys',
        'from runs.rundir import RunKey',
        'from runs.rundir.identity import run_config',
        "key = RunKey.train('table4', 'smoke', 'conv2-concat', 'cls', 0)",
        'kw = dict(data_root=None, work_dir=None)',
        "print(run_config(key, import_modules=False, **kw)[1], 'mmpretrain.models' in sys.modules)",
        "print(run_config(key, **kw)[1], 'mmpretrain.models' in sys.modules)"])
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, '-c', code], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(repo), PYTHONWARNINGS='ignore'))
    assert done.returncode == 0, done.stderr[-2000:]
    (hashed, loaded_before), (imported, loaded_after) = [
        line.split() for line in done.stdout.splitlines()[-2:]]
    assert (loaded_before, loaded_after) == ('False', 'True')
    assert hashed == imported
