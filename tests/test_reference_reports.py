"""Our runs against the official run (issue 23): the report's reference plot and gap lines,
``status``'s tracking line, ``plan``'s official anchor.

Smoke scale: full-profile runs of MobileMamba's ``official`` row are planted as mmengine text
logs in mmengine 0.10's real line format (``LogProcessor.get_log_after_iter``: ``Epoch(train)
[e][i/N]  base_lr: %.4e lr: %.4e  eta: ...  time: ...  data_time: ...  memory: ...  loss: ...``;
``after_val_epoch``: ``Epoch(val) [e][n/n]    accuracy/top1: ...``), their lr and loss taken
from the official run's extraction at the logged iterations, their top-1 planted a known
distance from the official one.
"""
from __future__ import annotations

import functools
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from runs import rundir
from ablations import get_table
from ablations.reference_catalog import load_reference
from reports.table_report import report
from reports.reference_sections import OFFICIAL, curves, render_reference_png
from runs.logs.log_formats import run_log

TABLE = 'mobilemamba_mrffi'
REF = 'mobilemamba-s6-in1k'
STAMP = '20250101_000000'
PER_EPOCH = 1251
EVAL_EPOCHS = (100, 200, 299)
# Planted distance from the official top-1 at each evaluation, per seed.
OFFSET = {0: -0.3, 1: -0.1, 2: -0.5}


def _when(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f'2025/01/01 {hours % 24:02d}:{rest // 60:02d}:{rest % 60:02d}'


@functools.lru_cache(maxsize=1)
def _fidelity() -> dict:
    """The fidelity record of the row's real full config at the official 8 GPUs."""
    from ablations.compose import build_row_config
    return build_row_config(TABLE, 'official', 'cls', profile='full', data_root='/nonexistent',
                            gpus=8).fidelity


def plant(work_dir: Path, seed: int, *, upto_epoch: int = 300, status: str = 'finished',
          lr_scale: float = 1.0) -> Path:
    """A full-profile run dir of the official row with an mmengine text log."""
    ref = load_reference(REF)
    run_dir = rundir.RunKey.train(TABLE, 'full', 'official', 'cls', seed).dir(work_dir)
    (run_dir / STAMP).mkdir(parents=True)
    official = {e['step']: e['metrics']['accuracy/top1'] for e in ref.evaluations}
    lines = [f'{_when(0)} - mmengine - INFO - Config:', 'train_dataloader = dict(',
             '    batch_size=128,', ')',
             'train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=5)']
    # Every 25th official logged line (every 1,250 iterations) up to the planted epoch, and a
    # validation after each of EVAL_EPOCHS, in the order the runner writes them.
    events = []
    for it, lr, loss in zip(*(ref.train[k][::25] for k in ('iter', 'lr', 'loss'))):
        epoch, i = (it - 1) // PER_EPOCH + 1, (it - 1) % PER_EPOCH + 1
        if epoch <= upto_epoch:
            ours = lr * lr_scale
            events.append((it, f'{_when(it // 10)} - mmengine - INFO - Epoch(train) '
                               f'[{epoch}][{i:>4}/{PER_EPOCH}]  base_lr: {ours:.4e} lr: '
                               f'{ours:.4e}  eta: 1 day, 2:03:04  time: 0.0900  data_time: '
                               f'0.0030  memory: 4000  loss: {loss + 0.1 * seed:.4f}'))
    for done in EVAL_EPOCHS:
        if done <= upto_epoch:
            it = done * PER_EPOCH + 0.5
            events.append((it, f'{_when(int(it) // 10)} - mmengine - INFO - Epoch(val) '
                               f'[{done}][50/50]    accuracy/top1: '
                               f'{official[done] + OFFSET[seed]:.4f}  accuracy/top5: 90.0000  '
                               'data_time: 0.0100  time: 0.1000'))
    lines += [text for _, text in sorted(events)]
    (run_dir / STAMP / f'{STAMP}.log').write_text('\n'.join(lines) + '\n')
    rundir.write_record(run_dir, table=TABLE, row='official', task='cls', seed=seed,
                        profile='full', status=status, returncode=0 if status == 'finished'
                        else None, started='2025-01-01T00:00:00', host=None,
                        fidelity=_fidelity())
    return run_dir


def test_report_plots_our_seeds_over_the_official_run_and_states_the_gaps(tmp_path):
    work = tmp_path / 'work_dirs'
    for seed in (0, 1, 2):
        plant(work, seed)
    out = tmp_path / 'report'
    status, warnings, written = report(get_table(TABLE), work, out, pick='paper',
                                       profile='full', no_complexity=True)
    assert status == 0, warnings
    md = (out / f'{TABLE}.md').read_text()
    ref = load_reference(REF)
    official = {e['step']: e['metrics']['accuracy/top1'] for e in ref.evaluations}
    assert '## Against the official run' in md
    for epoch in (200, 299):
        values = [official[epoch] + OFFSET[s] for s in (0, 1, 2)]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        assert (f'top-1 at epoch {epoch}: ours {mean:.1f} ± {sd:.1f} (n=3), official '
                f'{official[epoch]:.1f} ({mean - official[epoch]:+.1f})') in md
    assert 'top-1 at epoch 299: ours 77.7 ± 0.2 (n=3), official 78.0 (-0.3)' in md
    # The planted lr is the official one: it coincides at every common logged step.
    planted = len(ref.train['iter'][::25])
    assert md.count(f'lr: equals the official at all {planted} common logged steps') == 3

    # The plot's data: the CSV beside it holds exactly the plotted points, ours seeds apart.
    png = out / f'{TABLE}_reference_official_cls.png'
    csv = out / f'{TABLE}_reference_official_cls.csv'
    assert png in written and csv in written and png.stat().st_size
    points = pd.read_csv(csv)
    assert sorted(points['series'].unique()) == [OFFICIAL, 'seed0', 'seed1', 'seed2']
    off_lr = points[(points['series'] == OFFICIAL) & (points['panel'] == 'lr')]
    assert off_lr['y'].tolist() == ref.train['lr']
    assert off_lr['x'].tolist() == pytest.approx([i / PER_EPOCH for i in ref.train['iter']])
    seed1 = points[(points['series'] == 'seed1') & (points['panel'] == 'metric')]
    assert seed1['x'].tolist() == list(EVAL_EPOCHS)
    assert seed1['y'].tolist() == pytest.approx([official[e] - 0.1 for e in EVAL_EPOCHS])
    seed2_loss = points[(points['series'] == 'seed2') & (points['panel'] == 'loss')]
    official_loss = dict(zip(ref.train['iter'], ref.train['loss']))
    assert seed2_loss['y'].tolist() == pytest.approx(
        [official_loss[i] + 0.2 for i in ref.train['iter'][::25][:len(seed2_loss)]], abs=1e-4)

    # The figure draws those points: one line per (series, panel), the official in black.
    logs = {s: run_log(rundir.RunKey.train(TABLE, 'full', 'official', 'cls', s).dir(work))
            for s in (0, 1, 2)}
    again = curves(ref, logs, {0: 1, 1: 1, 2: 1}, 'top1')
    pd.testing.assert_frame_equal(again, points, check_dtype=False)
    fig = render_reference_png(again, ref, 'test', 'top1', tmp_path / 'again.png')
    drawn = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}
    assert set(drawn) == {f'{s}/{p}' for s in (OFFICIAL, 'seed0', 'seed1', 'seed2')
                          for p in ('lr', 'loss', 'metric')}
    assert drawn['official/lr'].get_color() == 'black'
    assert list(drawn['official/lr'].get_ydata()) == ref.train['lr']
    assert list(drawn['seed1/metric'].get_ydata()) == pytest.approx(
        [official[e] - 0.1 for e in EVAL_EPOCHS])
    assert len({drawn[f'seed{s}/loss'].get_color() for s in (0, 1, 2)}) == 3


def test_report_flags_an_lr_that_differs_from_the_official(tmp_path):
    work = tmp_path / 'work_dirs'
    plant(work, 0, lr_scale=1.01)
    out = tmp_path / 'report'
    report(get_table(TABLE), work, out, pick='paper', profile='full', no_complexity=True)
    md = (out / f'{TABLE}.md').read_text()
    assert 'seed0 lr: differs from the official at' in md


def test_status_tracks_a_running_full_run_against_its_reference(tmp_path, capsys):
    from runs.commands.table_status import status
    work = tmp_path / 'work_dirs'
    run_dir = plant(work, 0, upto_epoch=210, status='running')
    lock = rundir.RunLock(run_dir)
    assert lock.acquire()
    try:
        status(TABLE, work, 'full')
    finally:
        lock.release()
    out = capsys.readouterr().out.splitlines()
    (line,) = [text for text in out if 'tracking:' in text]
    ref = load_reference(REF)
    official = {e['step']: e['metrics']['accuracy/top1'] for e in ref.evaluations}
    assert f'reference {REF}' in line
    assert (f'top-1 at epoch 200: ours {official[200] - 0.3:.1f}, official {official[200]:.1f} '
            '(-0.3)') in line
    last = max(i for i in ref.train['iter'][::25] if (i - 1) // PER_EPOCH + 1 <= 210)
    lr = dict(zip(ref.train['iter'], ref.train['lr']))[last]
    assert (f'lr at step {last:,}: ours {lr:.4e}, official {lr:.4e} (equal to the official\'s '
            'printed precision)') in line
    # Only the running full run gets the line; the other rows are pending.
    assert sum('tracking:' in text for text in out) == 1


def test_plan_shows_the_official_run_beside_the_estimate():
    from runs.commands.planner import render_markdown
    from runs.logs.official_runs import official_anchor
    anchor = official_anchor(get_table(TABLE).base_configs['cls'])
    assert anchor['id'] == REF and anchor['gpus'] == 8 and anchor['global_batch'] == 1024
    assert anchor['s_per_iter'] == pytest.approx(0.089)
    assert math.floor(anchor['hours'] * 60) == 10 * 60 + 1  # 10 h 01 min
    entry = dict(status='ok', device='cpu', amp=False, scan_backend='torch', s_per_iter=0.5,
                 data_s_per_iter=0.1, peak_mem_gib=3.0, mem_kind='rss', flags=[],
                 official=anchor, estimates={'8': dict(gpus=8, total_iters=375_600,
                                                        wall_hours=52.2, gpu_hours=417.3)})
    plan = dict(table=TABLE, device='cpu', host='h', commit='c', iters=2, created='now',
                gpu_mem_gib=80, gpus=[8], runs={'official/cls': entry}, device_mem_gib=None,
                totals={'8': dict(gpu_hours=417.3, wall_hours_sequence=52.2,
                                  wall_hours_parallel=52.2, gpus_in_parallel=8,
                                  runs_not_estimated=0)}, assumptions=[])
    md = render_markdown(plan)
    row = next(line for line in md.splitlines() if line.startswith('| official/cls'))
    assert f'0.089 s/iter, 8 GPUs, 10.0 h ({REF})' in row
    assert 'official run: s/iter, GPUs, hours' in md
    # Table 4's seg rows all run UperNet-T's recipe: its official run anchors each of them.
    seg = official_anchor(get_table('table4').base_configs['seg'])
    assert (seg['gpus'], seg['id']) == (16, 'mambavision-t-upernet-ade20k')


def test_released_weights_section_shows_what_the_official_log_gives(tmp_path):
    """An eval of the released S6 weights sits beside the official run's best and final EMA
    top-1, the values those weights should give."""
    from reports.released import released_rows, render_released
    run_dir = rundir.RunKey.eval(TABLE, 'full', 'official', 'cls', 'ab' * 32).dir(tmp_path)
    run_dir.mkdir(parents=True)
    rundir.write_record(run_dir, status='finished', kind='eval', checkpoint='mobilemamba_s6.pth',
                        checkpoint_sha256='ab' * 32, metrics={'accuracy/top1': 77.99}, ema=True)
    rows = released_rows(tmp_path, TABLE)
    assert rows[0]['official'] == 'best 78.00 (epoch 299), final 77.96 (mobilemamba-s6-in1k)'
    markdown = render_released(rows)
    assert '| 77.99 | 78.0 | best 78.00 (epoch 299), final 77.96 (mobilemamba-s6-in1k) |' \
        in markdown


def test_dry_run_shows_the_official_run_beside_each_run(tmp_path, capsys):
    from tools.run_table import main
    assert main(['table4', '--profile', 'full', '--rows', 'conv2-gate', '--tasks', 'seg',
                 '--dry-run', '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # Every Table 4 seg row runs UperNet-T's recipe: the official UperNet-T run anchors it.
    assert 'official run: 0.170 s/iter, 16 GPUs, 8.0 h (mambavision-t-upernet-ade20k)' in out


def test_smoke_runs_are_not_held_against_the_official_run(tmp_path):
    work = tmp_path / 'work_dirs'
    run_dir = plant(work, 0)
    smoke = rundir.RunKey.train(TABLE, 'smoke', 'official', 'cls', 0).dir(work)
    smoke.parent.mkdir(parents=True)
    run_dir.rename(smoke)
    rundir.write_record(smoke, profile='smoke')
    out = tmp_path / 'report'
    status, warnings, written = report(get_table(TABLE), work, out, pick='paper',
                                       profile='smoke', no_complexity=True)
    assert status == 0, warnings
    assert 'Against the official run' not in (out / f'{TABLE}.md').read_text()
    assert not list(out.glob('*_reference_*'))
