"""The reporter on run folders written here in mmengine's real formats.

mmengine 0.10.7 formats, from its sources: LocalVisBackend.add_scalars appends one
``json.dump`` per line to ``<timestamp>/vis_data/scalars.json`` with a "step" key. Train lines
come from LogProcessor.get_log_after_iter (lr, data_time, loss, time, "epoch" for epoch-based
loops, "iter" = runner.iter + 1, step = runner.iter + 1); validation lines from
LoggerHook.after_val_epoch (the metrics, data_time, time, step = epoch, or the iteration when
log_metric_by_epoch is off). A test run dumps one object to ``<timestamp>/<timestamp>.json``.
NaN is written as a bare ``NaN`` (json's allow_nan default).
"""
from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from runs import rundir as run_layout
from ablations import METRICS, get_table
from reports import complexity_column
from tools import report as cli
from reports.parsing import read_folder
from reports.tabulation import fmt1, fmt_delta

TABLE = 'table4'


# ----------------------------------------------------------------------------- log writers
def train_line(it: int, epoch: int | None = 1, loss: float = 2.3) -> dict:
    line = dict(lr=0.001, data_time=0.01, loss=loss, time=0.2)
    if epoch is not None:
        line['epoch'] = epoch
    line.update(iter=it, step=it)
    return line


def val_line(step: int, **metrics: float) -> dict:
    return dict(metrics, data_time=0.01, time=0.1, step=step)


def seed_dir(root: Path, row: str, task: str, seed: int, profile: str = 'smoke') -> Path:
    path = run_layout.RunKey.train(TABLE, profile, row, task, seed).dir(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_run_json(folder: Path, *, profile: str | None = None, status: str = 'finished',
                   returncode: int | None = 0, started: str = '2025-01-02T10:00:00',
                   pid: int = 12345, host: str = 'elsewhere') -> None:
    row, task, seed = folder.parts[-3], folder.parts[-2], int(folder.name[4:])
    profile = profile or folder.parts[-4]
    (folder / 'console.log').write_text('Traceback (most recent call last): ...\n')
    run = dict(table=TABLE, row=row, task=task, seed=seed, profile=profile, status=status,
               returncode=returncode, started=started,
               ended=None if status == 'running' else started, command=['python', 'train.py'],
               config=str(folder / 'config.py'), console_log=str(folder / 'console.log'),
               data_root='data/tiny' if profile == 'smoke' else 'data/imagenet',
               commit='abc1234', host=host, pid=pid)
    (folder / 'run.json').write_text(json.dumps(run, indent=1))


def write_scalars(folder: Path, timestamp: str, lines: list) -> Path:
    """``lines``: dicts (dumped as mmengine does) or raw strings (truncated lines)."""
    vis = folder / timestamp / 'vis_data'
    vis.mkdir(parents=True, exist_ok=True)
    (folder / timestamp / f'{timestamp}.log').write_text('mmengine text log\n')
    path = vis / 'scalars.json'
    with open(path, 'a') as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + '\n')
    return path


def write_test_json(folder: Path, timestamp: str, metrics: dict) -> Path:
    (folder / timestamp).mkdir(parents=True, exist_ok=True)
    path = folder / timestamp / f'{timestamp}.json'
    path.write_text(json.dumps(dict(metrics, data_time=0.01, time=0.1)))
    return path


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    return child.pid


T1, T2 = '20250102_100000', '20250102_110000'
HELD_LOCKS: list = []  # locks of the planted live runs, held for the test session
SCALARS = 'vis_data/scalars.json'


def build_fixture(root: Path) -> None:
    """The table4 runs the tests read; every expected cell is computed by hand below."""
    # Row 1: three cls seeds (seed1 resumed: two timestamps), det, seg by iteration.
    d = seed_dir(root, 'causal-noconv2', 'cls', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': 45.0}),
                          train_line(2, epoch=2), val_line(2, **{'accuracy/top1': 43.25})])
    d = seed_dir(root, 'causal-noconv2', 'cls', 1)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': 41.0})])
    write_scalars(d, T2, [train_line(2, epoch=2), val_line(2, **{'accuracy/top1': 42.0})])
    d = seed_dir(root, 'causal-noconv2', 'cls', 2)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': 44.0})])
    d = seed_dir(root, 'causal-noconv2', 'det', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'coco/bbox_mAP': 0.4635,
                                                         'coco/bbox_mAP_50': 0.6,
                                                         'coco/segm_mAP': 0.404})])
    d = seed_dir(root, 'causal-noconv2', 'seg', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(20, epoch=None), val_line(40, aAcc=50.0, mIoU=10.0),
                          train_line(60, epoch=None), val_line(80, aAcc=60.0, mIoU=12.35)])
    # Row 2: truncated cls log, failed det run, seg with a NaN seed and a good one.
    d = seed_dir(root, 'regular-noconv2', 'cls', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': 40.0}),
                          train_line(2, epoch=2), '{"accuracy/top1": 4'])
    d = seed_dir(root, 'regular-noconv2', 'det', 0)
    write_run_json(d, status='failed', returncode=1)
    write_scalars(d, T1, [train_line(1)])
    d = seed_dir(root, 'regular-noconv2', 'seg', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(20, epoch=None), val_line(40, mIoU=float('nan'))])
    d = seed_dir(root, 'regular-noconv2', 'seg', 1)
    write_run_json(d)
    write_scalars(d, T1, [train_line(20, epoch=None), val_line(40, mIoU=20.0)])
    # Row 3: cls still running here (a live process holds its lock), det interrupted (its
    # record says running, nothing holds the lock), seg fine.
    d = seed_dir(root, 'conv2-gate', 'cls', 0)
    write_run_json(d, status='running', returncode=None, pid=os.getpid(),
                   host=socket.gethostname(), started='2025-01-02T12:00:00')
    lock = run_layout.RunLock(d)
    assert lock.acquire()
    HELD_LOCKS.append(lock)
    write_scalars(d, T1, [train_line(1)])
    d = seed_dir(root, 'conv2-gate', 'det', 0)
    write_run_json(d, status='running', returncode=None, pid=dead_pid(), host=socket.gethostname())
    d = seed_dir(root, 'conv2-gate', 'seg', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(20, epoch=None), val_line(40, mIoU=13.0)])
    # Row 4: train then test mode (the test JSON is newest), no seg run for seed0's partial.
    d = seed_dir(root, 'conv2-concat', 'cls', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': 70.0})])
    write_test_json(d, T2, {'accuracy/top1': 82.0, 'accuracy/top5': 95.0})
    d = seed_dir(root, 'conv2-concat', 'det', 0)
    write_run_json(d)
    write_test_json(d, T1, {'coco/bbox_mAP': 0.41, 'coco/segm_mAP': 0.37})
    d = seed_dir(root, 'conv2-concat', 'seg', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(20, epoch=None), val_line(40, mIoU=12.0)])
    d = seed_dir(root, 'conv2-concat', 'seg', 1)
    write_run_json(d)
    write_scalars(d, T1, [train_line(20, epoch=None)])
    # Row 5 (not in the paper): one good seed, one failed, and an older full-profile run.
    d = seed_dir(root, 'conv2-add', 'cls', 0)
    write_run_json(d)
    write_scalars(d, T1, [train_line(1), val_line(1, **{'accuracy/top1': 50.0})])
    d = seed_dir(root, 'conv2-add', 'cls', 1, profile='full')
    write_run_json(d, started='2024-12-01T08:00:00')
    write_scalars(d, '20241201_080000', [val_line(300, **{'accuracy/top1': 81.0})])
    d = seed_dir(root, 'conv2-add', 'cls', 2)
    write_run_json(d, status='failed', returncode=1)
    (root / TABLE / 'smoke' / 'bogus-row').mkdir()


def fake_config(table: str, row: str):
    from mmengine.config import Config
    return Config(dict(model=dict(type='Toy', row=row)))


def fake_measure(cfg, input_size: int) -> dict:
    fake_measure.calls += 1
    return dict(params=31_790_000, flops=4_370_000_000)


fake_measure.calls = 0


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A table4 work dir; the working directory is tmp_path so that paths print relative."""
    monkeypatch.chdir(tmp_path)
    build_fixture(tmp_path / 'work_dirs')
    monkeypatch.setattr(complexity_column, 'row_model_config', fake_config)
    monkeypatch.setattr(complexity_column, 'measure_model', fake_measure)
    fake_measure.calls = 0
    return tmp_path


def md_table(text: str) -> dict[str, dict[str, str]]:
    """The first pipe table of a markdown text: {first cell: {column: cell}}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith('| '))
    header = [c.strip() for c in lines[start].strip('|').split(' | ')]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip().strip('|').split(' | ')]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def path_of(row: str, task: str, seed: int, tail: str) -> str:
    return f'work_dirs/{TABLE}/smoke/{row}/{task}/seed{seed}/{tail}'


# ----------------------------------------------------------------------------- tests
def test_number_formatting_is_half_up_and_signed():
    assert fmt1(43.25) == '43.3'            # Python's round-half-even would say 43.2
    assert fmt1(0.4635 * 100) == '46.4'     # 46.349999... is float noise for 46.35
    assert fmt1(12.35) == '12.4'
    assert fmt_delta(46.35, 44.8) == '+1.6'
    assert fmt_delta(40.4, 40.4) == '0.0'
    assert fmt_delta(43.0833, 80.5) == '-37.4'


def test_folder_kinds(tmp_path):
    keys = ('accuracy/top1',)
    write_scalars(tmp_path, T1, [train_line(1)])
    assert read_folder(tmp_path / T1, keys).kind == 'partial'
    write_scalars(tmp_path, T2, [train_line(1), val_line(1, **{'val/accuracy/top1': 10.0})])
    log = read_folder(tmp_path / T2, keys)
    assert log.kind == 'complete'
    assert [(e.values, e.line, e.step) for e in log.evaluations] == [
        ({'accuracy/top1': 10.0}, 2, 1)]
    bad = write_scalars(tmp_path, '20250103_000000',
                        [val_line(1, **{'accuracy/top1': 'high'}), '[1, 2]'])
    log = read_folder(bad.parent.parent, keys)
    assert log.kind == 'corrupt' and not log.evaluations
    assert [why for _, why in log.corrupt] == ['not a number: accuracy/top1',
                                               'not a JSON object']
    (tmp_path / '20250104_000000').mkdir()
    assert read_folder(tmp_path / '20250104_000000', keys).kind == 'empty'


def test_markdown_cells(runs, capsys):
    status = cli.main([TABLE, '--out', 'out'])
    assert status == 0
    text = (runs / 'out' / f'{TABLE}.md').read_text()
    cells = md_table(text)
    top1, box, mask, miou = ('ImageNet top-1 (%)', 'COCO AP box', 'COCO AP mask', 'ADE20K mIoU')

    # seeds 43.25 (final of 45.0, 43.25), 42.0 (newest of two timestamps), 44.0:
    # mean 43.0833, sample std 1.0104
    row = cells['causal conv1 - w/o conv2 [1]']
    assert row[top1] == '43.1 ± 1.0 n=3 (80.5, -37.4)'
    assert row[box] == '46.4 n=1 (44.8, +1.6)'
    assert row[mask] == '40.4 n=1 (40.4, 0.0)'
    assert row[miou] == '12.4 n=1 (44.2, -31.8)'  # the step-80 value, not step 40
    assert row['Params (M)'] == '31.8 (n/p)'
    assert row['GFLOPs'] == '4.4 (n/p)'

    row = cells['conv1 - w/o conv2']
    scalars = path_of('regular-noconv2', 'cls', 0, f'{T1}/{SCALARS}')
    assert row[top1] == f'corrupt: {scalars}:4 (80.9)'
    failed = path_of('regular-noconv2', 'det', 0, 'console.log')
    assert row[box] == f'failed: {failed} (45.0)'
    assert row[mask] == f'failed: {failed} (40.8)'
    nan_at = path_of('regular-noconv2', 'seg', 0, f'{T1}/{SCALARS}')
    assert row[miou] == f'20.0 n=1; seed0 nan: {nan_at}:2 (44.7, -24.7)'

    row = cells['conv1 - conv2 - w/o concat']
    assert row[top1] == 'running (81.3)'
    assert row[box] == 'interrupted (45.3)'
    assert row[mask] == 'interrupted (41.0)'
    assert row[miou] == '13.0 n=1 (45.7, -32.7)'

    row = cells['conv1 - conv2 - concat [2]']
    assert row[top1] == '82.0 n=1 (82.3, -0.3)'    # the test JSON, newer than the val lines
    assert row[box] == '41.0 n=1 (46.4, -5.4)'
    assert row[mask] == '37.0 n=1 (41.8, -4.8)'
    partial = path_of('conv2-concat', 'seg', 1, f'{T1}/{SCALARS}')
    assert row[miou] == f'12.0 n=1; seed1 partial: {partial} (46.0, -34.0)'

    row = cells['conv1 - conv2 - add (ours) [3]']
    add_failed = path_of('conv2-add', 'cls', 2, 'console.log')
    assert row[top1] == f'50.0 n=1; seed2 failed: {add_failed} (n/p)'  # full run left out
    assert row[box] == row[mask] == row[miou] == '- (n/p)'
    assert len(cells) == 5

    assert '**Smoke profile: pipeline checks, not reproductions.**' in text
    assert '- Profile: smoke' in text and '- Data: data/tiny' in text
    assert 'commit of the runs: abc1234' in text
    assert "left out 1 run(s) of profile 'full' (rows: conv2-add)" in text
    assert 'bogus-row: not a row of table4; ignored' in text
    for caveat in get_table(TABLE).caveats:
        assert caveat in text
    assert '[1] causal conv1 - w/o conv2: The v2 text contradicts' in text
    assert 'interrupted' in capsys.readouterr().err


def test_claim_check(runs):
    assert cli.main([TABLE, '--out', 'out', '--no-complexity']) == 0
    text = (runs / 'out' / f'{TABLE}.md').read_text()
    claims = text[text.index('## Claim check'):]
    pairs = md_table(claims)
    # mIoU ours: causal 12.35, regular 20.0, gate 13.0, concat 12.0; the paper orders all four
    # increasing: of 6 pairs only (causal, regular) and (causal, gate) keep the order.
    assert pairs['ADE20K mIoU']["pairs in the paper's order"] == '2/6'
    assert pairs['ImageNet top-1 (%)']["pairs in the paper's order"] == '1/1'
    assert pairs['COCO AP box']["pairs in the paper's order"] == '0/1'
    steps = [line for line in claims.splitlines() if line.startswith('| ')
             and ('>' in line)]
    # One seed per row: the interval rests on the prior ADE20K noise (sd 1.0), 7.65 +- 2.77;
    # 64 and 17 seeds per row would resolve the paper's +0.5 and +1.0 (d = 0.5 and 1.0). Smoke
    # runs: the step and interval are shown, a verdict is not (full-run priors, generated data).
    assert ('| regular conv1 > causal conv1 | ADE20K mIoU | +0.5 | +7.65 [+4.88, +10.42] | '
            '<0.001 | +7.65 | prior noise, sd 1.00 (n=1 vs 1) | pipeline check (smoke): no '
            'verdict | 64 |' in steps)
    assert ('| conv2 > w/o conv2 | ADE20K mIoU | +1.0 | -7.00 [-9.77, -4.23] | <0.001 | -7.00 | '
            'prior noise, sd 1.00 (n=1 vs 1) | pipeline check (smoke): no verdict | 17 |' in steps)
    assert not any(v in line for line in steps
                   for v in ('reproduced', 'contradicted', 'inconclusive'))
    steps_csv = pd.read_csv(runs / 'out' / f'{TABLE}_steps.csv')
    assert set(steps_csv['verdict']) <= {'pipeline check (smoke): no verdict'} | {
        v for v in steps_csv['verdict'] if v.startswith('not checked')}
    assert ('| regular conv1 > causal conv1 | ImageNet top-1 (%) | +0.4 | - | - | - | - | '
            'not checked: no result for regular-noconv2 | - |' in steps)
    # --no-complexity on a table whose paper gives no params: no such columns
    assert 'Params (M)' not in text


def bars(fig, metric: str) -> dict[str, dict[float, float]]:
    """The bars of ``metric``'s panel, read back from the figure: {label: {x centre: height}}."""
    from matplotlib.container import BarContainer
    (ax, ) = [a for a in fig.axes if a.get_title() == METRICS[metric].label]
    found: dict[str, dict[float, float]] = {}
    for container in ax.containers:
        if isinstance(container, BarContainer):
            for patch in container.patches:
                centre = round(patch.get_x() + patch.get_width() / 2, 6)
                found.setdefault(container.get_label(), {})[centre] = patch.get_height()
    return found


@pytest.fixture
def saved_figures(monkeypatch) -> dict:
    """{file name: figure} of every figure the reporter saves (the real savefig still writes
    the file), so that a test reads the plotted values back."""
    from matplotlib.figure import Figure
    saved = {}
    real_savefig = Figure.savefig

    def keep(fig, path, *args, **kwargs):
        saved[Path(path).name] = fig
        return real_savefig(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, 'savefig', keep)
    return saved


def test_pick_best_and_csv(runs, saved_figures):
    assert cli.main([TABLE, '--out', 'out', '--pick', 'best', '--no-complexity']) == 0
    text = (runs / 'out' / f'{TABLE}.md').read_text()
    # best of seed0 is 45.0 (step 1); seeds 45.0, 42.0, 44.0: mean 43.667, std 1.528
    assert md_table(text)['causal conv1 - w/o conv2 [1]']['ImageNet top-1 (%)'] == \
        '43.7 ± 1.5 n=3 (80.5, -36.8)'
    assert 'BEST evaluation of each run (--pick best)' in text
    with open(runs / 'out' / f'{TABLE}.csv') as f:
        records = list(csv.DictReader(f))
    ok = [r for r in records if r['status'] == 'ok']
    assert ok and all(r['log_path'] and r['log_line'] for r in ok)
    for r in ok:  # every number traces back to its log line
        line = (runs / r['log_path']).read_text().splitlines()[int(r['log_line']) - 1]
        raw = json.loads(line)
        key = {'top1': 'accuracy/top1', 'box_ap': 'coco/bbox_mAP', 'mask_ap': 'coco/segm_mAP',
               'miou': 'mIoU'}[r['metric']]
        scale = 100.0 if r['metric'] in ('box_ap', 'mask_ap') else 1.0
        assert math.isclose(raw[key] * scale, float(r['value']))
    full = [r for r in records if r['profile'] == 'full']
    assert [(r['row'], r['value'], r['in_report']) for r in full] == [
        ('conv2-add', '81.0', 'False')]
    # The step plot draws the best evaluations: each row's mean step from the first row
    # (causal-noconv2: best of 45.0, 42.0, 44.0) beside the paper's, read back from the figure.
    assert (runs / 'out' / f'{TABLE}.png').is_file()
    base = (45.0 + 42.0 + 44.0) / 3
    top1 = bars(saved_figures[f'{TABLE}.png'], 'top1')
    # x: the rows after the first, at i - 0.2 (published) and i + 0.2 (ours); no bar for a row
    # without a result (regular-noconv2 corrupt, conv2-gate running) or a published value
    assert top1['published step'] == pytest.approx({-0.2: 80.9 - 80.5, 0.8: 81.3 - 80.5,
                                                    1.8: 82.3 - 80.5})
    ours = {x: h for label, drawn in top1.items() if label.startswith('ours')
            for x, h in drawn.items()}
    assert ours == pytest.approx({2.2: 82.0 - base, 3.2: 50.0 - base})
    # ADE20K: the best of seed0's 10.0 and 12.35 is the baseline; NaN seed left out
    miou = bars(saved_figures[f'{TABLE}.png'], 'miou')
    ours = {x: h for label, drawn in miou.items() if label.startswith('ours')
            for x, h in drawn.items()}
    assert ours == pytest.approx({0.2: 20.0 - 12.35, 1.2: 13.0 - 12.35, 2.2: 12.0 - 12.35})


def whiskers(fig, metric: str) -> dict[float, tuple[float, float]]:
    """The error bars of ``metric``'s panel, read back from the figure: {x: (low end, high
    end)} of each bar's whisker (the vertical segment matplotlib draws for its yerr)."""
    from matplotlib.container import BarContainer
    (ax, ) = [a for a in fig.axes if a.get_title() == METRICS[metric].label]
    found = {}
    for container in ax.containers:
        if isinstance(container, BarContainer) and container.errorbar is not None:
            _, _, (segments, ) = container.errorbar.lines
            for (x, low), (x_high, high) in segments.get_segments():
                assert x == x_high  # vertical
                found[round(float(x), 6)] = (float(min(low, high)), float(max(low, high)))
    return found


def test_step_plot_whiskers_are_the_95_percent_intervals(tmp_path, monkeypatch, saved_figures):
    """docs/seed_noise.md, reports/stats.py: a step's 95% interval is Welch's t when both rows
    have two or more seeds, one row's sd for both (t, its n - 1 degrees of freedom) when only
    it has, else the documented prior sd taken as known (normal). The step plot's whiskers end
    where those intervals end, computed here from the planted per-seed values with scipy's t
    and normal quantiles; the absolute plot's whiskers are mean -+ sample sd."""
    import statistics

    from scipy import stats as sps
    monkeypatch.chdir(tmp_path)
    root = tmp_path / 'work_dirs'
    top1 = {'causal-noconv2': [70.0, 71.5, 69.25],         # the first row: the baseline
            'regular-noconv2': [72.0, 74.5, 73.0, 71.75],  # Welch
            'conv2-gate': [75.0],                          # the baseline's sd for both
            'conv2-concat': [76.0, 76.0]}                  # Welch (one spread is zero)
    miou = {'causal-noconv2': [40.0], 'regular-noconv2': [42.5]}  # one seed each: prior
    for metrics, task, key in ((top1, 'cls', 'accuracy/top1'), (miou, 'seg', 'mIoU')):
        for row, values in metrics.items():
            for seed, value in enumerate(values):
                d = seed_dir(root, row, task, seed)
                write_run_json(d)
                write_scalars(d, T1, [train_line(1), val_line(1, **{key: value})])
    assert cli.main([TABLE, '--out', 'out', '--no-complexity']) == 0
    quantile = 0.5 + 0.95 / 2

    def welch(better, worse):
        vb, vw = statistics.variance(better) / len(better), statistics.variance(worse) / len(worse)
        df = (vb + vw) ** 2 / (vb ** 2 / (len(better) - 1) + vw ** 2 / (len(worse) - 1))
        return sps.t.ppf(quantile, df) * math.sqrt(vb + vw)

    base = top1['causal-noconv2']
    diff = {row: statistics.fmean(v) - statistics.fmean(base) for row, v in top1.items()}
    half = {'regular-noconv2': welch(top1['regular-noconv2'], base),
            'conv2-gate': sps.t.ppf(quantile, len(base) - 1) * statistics.stdev(base)
            * math.sqrt(1 / 1 + 1 / len(base)),
            'conv2-concat': welch(top1['conv2-concat'], base)}
    # x: the rows after the first at i + 0.2 (ours); conv2-add has no result, no whisker
    expected = {round(i + 0.2, 6): (diff[row] - half[row], diff[row] + half[row])
                for i, row in enumerate(['regular-noconv2', 'conv2-gate', 'conv2-concat'])}
    drawn = whiskers(saved_figures[f'{TABLE}.png'], 'top1')
    assert drawn.keys() == expected.keys()
    for x, ends in expected.items():
        assert drawn[x] == pytest.approx(ends, rel=0, abs=1e-9), x
    # ADE20K, one seed a row: the prior sd, 1 mIoU (docs/seed_noise.md), known: normal
    prior = sps.norm.ppf(quantile) * 1.0 * math.sqrt(1 / 1 + 1 / 1)
    assert whiskers(saved_figures[f'{TABLE}.png'], 'miou') == pytest.approx(
        {0.2: (2.5 - prior, 2.5 + prior)}, rel=0, abs=1e-9)
    # the values themselves: ours at i + 0.2, whiskers mean -+ sample sd (n >= 2 only)
    drawn = whiskers(saved_figures[f'{TABLE}_absolute.png'], 'top1')
    expected = {round(i + 0.2, 6): (statistics.fmean(v) - statistics.stdev(v),
                                    statistics.fmean(v) + statistics.stdev(v))
                for i, v in enumerate(top1.values()) if len(v) >= 2}
    assert drawn.keys() == expected.keys()
    for x, ends in expected.items():
        assert drawn[x] == pytest.approx(ends, rel=0, abs=1e-9), x


def test_profile_option_reports_only_that_profile(runs):
    assert cli.main([TABLE, '--out', 'out', '--profile', 'full', '--no-complexity']) == 0
    text = (runs / 'out' / f'{TABLE}.md').read_text()
    cells = md_table(text)
    assert cells['conv1 - conv2 - add (ours) [3]']['ImageNet top-1 (%)'] == '81.0 n=1 (n/p)'
    assert cells['causal conv1 - w/o conv2 [1]']['ImageNet top-1 (%)'] == '- (80.5)'
    assert 'Smoke profile' not in text and '- Data: data/imagenet' in text


def test_complexity_cache_and_errors(runs, monkeypatch):
    assert cli.main([TABLE, '--out', 'out']) == 0
    assert fake_measure.calls == 5
    assert cli.main([TABLE, '--out', 'out']) == 0
    assert fake_measure.calls == 5  # cached per row

    def broken(table: str, row: str):
        raise ModuleNotFoundError("No module named 'tools.row_config'")

    monkeypatch.setattr(complexity_column, 'row_model_config', broken)
    assert cli.main([TABLE, '--out', 'out2']) == 0
    text = (runs / 'out2' / f'{TABLE}.md').read_text()
    row = md_table(text)['conv1 - w/o conv2']
    assert row['Params (M)'] == ("error: ModuleNotFoundError: No module named "
                                 "'tools.row_config' (n/p)")
    assert row['ImageNet top-1 (%)'].startswith('corrupt: ')  # the rest is still written


def _table5_run(tmp_path: Path) -> None:
    """One finished smoke run of table5's official row (last-half), top-1 60.0."""
    d = tmp_path / 'work_dirs' / 'table5' / 'smoke' / 'last-half' / 'cls' / 'seed0'
    d.mkdir(parents=True)
    (d / 'run.json').write_text(json.dumps(dict(
        table='table5', row='last-half', task='cls', seed=0, profile='smoke',
        status='finished', returncode=0, started='2025-01-01T00:00:00')))
    write_scalars(d, T1, [val_line(1, **{'accuracy/top1': 60.0})])


def test_table5_shows_published_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _table5_run(tmp_path)
    monkeypatch.setattr(complexity_column, 'row_model_config', fake_config)
    monkeypatch.setattr(complexity_column, 'measure_model', fake_measure)
    assert cli.main(['table5', '--out', 'out']) == 0
    cells = md_table((tmp_path / 'out' / 'table5.md').read_text())
    assert cells['Last N/2 (MMMMSSSS) [2]']['Params (M)'] == '31.8 (31.8, 0.0)'
    assert cells['Random [1]']['ImageNet top-1 (%)'] == '- (81.3)'
    assert cells['Random [1]']['GFLOPs'] == '4.4 (n/p)'
    assert cli.main(['table5', '--out', 'out3', '--no-complexity']) == 0
    cells = md_table((tmp_path / 'out3' / 'table5.md').read_text())
    assert cells['Random [1]']['Params (M)'] == 'skipped (31.8)'


def _independent_macs(model, size: int) -> int:
    """Multiply-accumulates of one forward of ``model`` (an mmpretrain classifier) at ``size`` px,
    counted without backbones.model_complexity: mmengine's FlopAnalyzer (fvcore's counter, on a traced
    graph) with handles for the three ops it cannot count, and the report's convention (matmuls,
    convolutions, attention, scans; fvcore's norm and pooling counts, 0.2 % here, left out)."""
    import torch
    from mmengine.analysis import FlopAnalyzer
    from mmengine.analysis.jit_handles import conv_flop_count, get_shape

    def conv_same(inputs, outputs):  # a conv with padding='same' (the mixer's conv1d)
        return conv_flop_count(get_shape(inputs[0]), get_shape(inputs[1]),
                               get_shape(outputs[0]))

    def attention(inputs, outputs):  # QK^T and AV
        (b, h, n, d), (_, _, m, _), v = (get_shape(t) for t in inputs[:3])
        return b * h * n * m * d + b * h * n * m * v[-1]

    def scan(inputs, outputs):  # mamba's 9 * B * L * D * N, plus B * D * L for D (no z here)
        (b, dim, length), (_, n) = get_shape(inputs[0]), get_shape(inputs[2])
        return 9 * b * length * dim * n + b * dim * length

    class Tensor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x, mode='tensor')

    def uncounted(inputs, outputs):
        return 0

    analyzer = FlopAnalyzer(Tensor().eval(), (torch.randn(1, 3, size, size),))
    analyzer.set_op_handle('aten::_convolution_mode', conv_same,
                           'aten::scaled_dot_product_attention', attention,
                           'prim::PythonOp._SelectiveScanFn', scan,
                           'aten::batch_norm', uncounted, 'aten::layer_norm', uncounted,
                           'aten::adaptive_avg_pool2d', uncounted)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    counted = analyzer.by_operator()
    assert all(counted[op] > 0 for op in ('linear', 'conv', '_convolution_mode', 'PythonOp.'
                                          '_SelectiveScanFn', 'scaled_dot_product_attention'))
    assert not set(analyzer.unsupported_ops()) - {  # what is left uncounted is elementwise
        'aten::addcmul_', 'aten::add', 'aten::mul', 'aten::gelu', 'aten::silu', 'aten::exp',
        'aten::exp_', 'aten::neg', 'aten::softplus'}, analyzer.unsupported_ops()
    return analyzer.total()


def test_complexity_column_is_the_real_count(tmp_path, monkeypatch):
    """The Params and GFLOPs cells as the reporter fills them (backbones.model_complexity on the row's
    full-profile model, no stand-in), for table5's official row (MambaVision-T, 224 px), against
    counts of the model it built made without backbones.model_complexity: its parameters, and the
    multiply-accumulates mmengine's FlopAnalyzer traces; and the paper's 31.8 M parameters."""
    import dataclasses
    import ablations
    import backbones.build
    table5 = get_table('table5')
    monkeypatch.setitem(ablations.TABLES, 'table5',
                        dataclasses.replace(table5, rows=(table5.row('last-half'), ), claims=()))
    built = []  # the model the reporter counts (the real builder; kept to be counted again)
    real_build = backbones.build.build_model_from_config
    monkeypatch.setattr(backbones.build, 'build_model_from_config',
                        lambda cfg: built.append(real_build(cfg)) or built[-1])
    monkeypatch.chdir(tmp_path)
    _table5_run(tmp_path)
    assert cli.main(['table5', '--out', 'out']) == 0

    (model, ) = built
    from mmpretrain.models import ImageClassifier
    assert isinstance(model, ImageClassifier) and model.head.fc.out_features == 1000
    params = sum(p.numel() for p in model.parameters())
    macs = _independent_macs(model, table5.input_size)
    cached = json.loads((tmp_path / 'out' / complexity_column.CACHE_NAME).read_text())
    assert (cached['table5/last-half']['params'], cached['table5/last-half']['flops']) == \
        (params, macs)
    (cells, ) = md_table((tmp_path / 'out' / 'table5.md').read_text()).values()
    assert cells['Params (M)'] == f'{fmt1(params / 1e6)} (31.8, {fmt_delta(params / 1e6, 31.8)})'
    assert cells['GFLOPs'] == f'{fmt1(macs / 1e9)} (n/p)'
    # the paper's Table 1 gives MambaVision-T 31.8 M parameters (and 4.4 GFLOPs without
    # attention, which fvcore skips: 4.47 here, 4.58 with it)
    assert cells['Params (M)'] == '31.8 (31.8, 0.0)' and cells['GFLOPs'] == '4.6 (n/p)'


def test_exit_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(['table9']) == 2
    err = capsys.readouterr().err
    assert "unknown ablation table 'table9'" in err and 'table4' in err and 'tableS1' in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main([TABLE, '--pick', 'median'])
    assert exit_info.value.code == 2
    assert cli.main([TABLE, '--work-dir', 'nowhere']) == 1
    assert not (tmp_path / 'reports').exists()
    # Only failed runs: the table is written, but nothing could be read.
    d = seed_dir(tmp_path / 'work_dirs', 'conv2-gate', 'cls', 0)
    write_run_json(d, status='failed', returncode=1)
    assert cli.main([TABLE, '--no-complexity']) == 1
    assert (tmp_path / 'reports' / TABLE / f'{TABLE}.md').is_file()
    assert 'nothing could be read' in capsys.readouterr().err


def test_run_states_and_fallbacks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = get_table(TABLE)

    def read(seed: int):
        from reports.parsing import read_seed
        run = read_seed(seed_dir(tmp_path / 'work_dirs', 'conv2-add', 'cls', seed),
                        table, 'conv2-add', 'cls', seed, profile='smoke')
        (record,) = run.records
        return record, run.warnings

    # running on another host: its pid cannot be checked here, so it stays "running"
    d = seed_dir(tmp_path / 'work_dirs', 'conv2-add', 'cls', 0)
    write_run_json(d, status='running', returncode=None, pid=dead_pid(), host='other-host')
    assert read(0)[0]['status'] == 'running'
    # "finished" with a non-zero return code is a failure, whatever its logs say
    d = seed_dir(tmp_path / 'work_dirs', 'conv2-add', 'cls', 1)
    write_run_json(d, returncode=3)
    write_scalars(d, T1, [val_line(1, **{'accuracy/top1': 10.0})])
    record, _ = read(1)
    assert (record['status'], record['detail']) == ('failed', path_of('conv2-add', 'cls', 1,
                                                                      'console.log'))
    # a newer folder with train lines only (partial) falls back to the older complete one
    d = seed_dir(tmp_path / 'work_dirs', 'conv2-add', 'cls', 2)
    write_run_json(d)
    write_scalars(d, T1, [val_line(1, **{'accuracy/top1': 10.0})])
    write_scalars(d, T2, [train_line(2)])
    record, warnings = read(2)
    assert (record['status'], record['value'], record['timestamp']) == ('ok', 10.0, T1)
    assert any('no evaluation (partial)' in w for w in warnings)
    # a corrupt newest folder is not replaced by an older complete one
    write_scalars(d, '20250102_120000', [val_line(3, **{'accuracy/top1': 11.0}), '{"acc'])
    record, _ = read(2)
    assert record['status'] == 'corrupt' and math.isnan(record['value'])
    # no run.json: read from the logs, profile from the folder; unreadable run.json: corrupt
    d = seed_dir(tmp_path / 'work_dirs', 'conv2-add', 'cls', 3)
    write_scalars(d, T1, [val_line(1, **{'accuracy/top1': 12.0})])
    record, _ = read(3)
    assert (record['status'], record['profile'], record['value']) == ('ok', 'smoke', 12.0)
    # --work-dir may name the table's own folder
    assert cli.main([TABLE, '--work-dir', f'work_dirs/{TABLE}', '--profile', 'smoke',
                     '--no-complexity']) == 0
    assert '12.0 n=1' in (tmp_path / 'reports' / TABLE / f'{TABLE}.md').read_text()
    (d / 'run.json').write_text('{"status": "fini')
    assert read(3)[0]['status'] == 'corrupt'
    # an empty seed folder is "missing"
    seed_dir(tmp_path / 'work_dirs', 'conv2-add', 'cls', 4)
    assert read(4)[0]['status'] == 'missing'


def test_recipe_as_run_and_deviation_marks_in_the_report(tmp_path, monkeypatch):
    """run.json's fidelity record reaches the report: the recipe as run per task, numbered
    deviations, their marks beside the cells they affect, and the paper's pick per recipe."""
    monkeypatch.chdir(tmp_path)
    fidelity = dict(recipe='mambavision-in1k', recipe_source='src', gpus=8, per_gpu_batch=128,
                    accumulation=4, effective_batch=4096, official_batch=4096, lr=5e-3,
                    official_lr=5e-3, lr_rule='sqrt', amp=True, ema=True, mesa=None, epochs=320,
                    deviations=['lr 5e-3 as the official yaml; the paper text says 4e-3'])
    for row in ('conv2-gate', 'conv2-concat'):
        d = seed_dir(tmp_path / 'work_dirs', row, 'cls', 0)
        write_run_json(d)
        record = json.loads((d / 'run.json').read_text())
        (d / 'run.json').write_text(json.dumps({**record, 'fidelity': fidelity}))
        # best 81.0 at epoch 1, final 80.0: the recipe reports the best EMA epoch
        write_scalars(d, T1, [val_line(1, **{'accuracy/top1': 81.0}),
                              val_line(2, **{'accuracy/top1': 80.0})])
    assert cli.main([TABLE, '--no-complexity']) == 0
    cells = md_table((tmp_path / 'reports' / TABLE / f'{TABLE}.md').read_text())
    text = (tmp_path / 'reports' / TABLE / f'{TABLE}.md').read_text()
    assert cells['conv1 - conv2 - concat [2]']['ImageNet top-1 (%)'].startswith('81.0 n=1')
    assert cells['conv1 - conv2 - concat [2]']['ImageNet top-1 (%)'].endswith('[r1]')
    assert 'Recipe as run:' in text and 'effective batch 4096 = 8 GPUs x 128 x 4' in text
    assert '[r1] cls: lr 5e-3 as the official yaml' in text
    with open(tmp_path / 'reports' / TABLE / f'{TABLE}.csv') as f:
        picks = {r['pick'] for r in csv.DictReader(f) if r['status'] == 'ok'}
    assert picks == {'best'}
