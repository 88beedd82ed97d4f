"""End to end: a real mmengine Runner writes the logs, the reporter reads them back.

A toy model and toy metrics named like the toolkits' ('accuracy/top1', 'coco/bbox_mAP',
'mIoU') train for a few iterations into ``work_dirs/table4/<row>/<task>/seed0/``: an
epoch-based classification run followed by a test-mode run (two timestamps), an epoch-based
detection run and an iteration-based segmentation run. The reporter must find exactly the
values the metrics computed, in the runs' own files.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tools import report as cli
from reports.tabulation import fmt1, fmt_delta

import mmengine  # noqa: E402,F401  (pinned: never a skip)
from mmengine.evaluator import BaseMetric  # noqa: E402
from mmengine.model import BaseModel  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

ROW = 'conv2-concat'


class ToyData(Dataset):
    def __init__(self, n: int = 8):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=gen)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.x[i], labels=self.y[i])


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs, labels, mode: str = 'tensor'):
        logits = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        if mode == 'predict':
            return [dict(correct=bool(c)) for c in logits.argmax(1) == labels]
        return logits


class ToyMetric(BaseMetric):
    """A score from the fraction correct, reported under the toolkits' names, falling with
    each evaluation (so that the final and the best evaluation differ); it remembers what it
    reported."""
    reported: list[dict] = []

    def __init__(self, prefix: str | None, keys: dict[str, float]):
        super().__init__(prefix=prefix)
        self.keys = keys  # metric name -> scale of its unit (100 for %, 1 for COCO's 0-1)
        self.calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(s['correct'] for s in data_samples)

    def compute_metrics(self, results: list) -> dict:
        fraction = sum(results) / len(results)
        self.calls += 1
        # Offsets keep the metrics distinct so a mixed-up column cannot pass.
        values = {k: scale * (0.3 + 0.5 * fraction) * (1 - 0.1 * i) / self.calls
                  for i, (k, scale) in enumerate(self.keys.items())}
        ToyMetric.reported.append({f'{self.prefix}/{k}' if self.prefix else k: v
                                   for k, v in values.items()})
        return values


def loader() -> dict:
    return dict(dataset=ToyData(), batch_size=4, collate_fn=dict(type='default_collate'),
                sampler=dict(type='DefaultSampler', shuffle=False))


def run_json(work_dir: Path, task: str) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'run.json').write_text(json.dumps(dict(
        table='table4', row=ROW, task=task, seed=0, profile='smoke', status='finished',
        returncode=0, started='2025-01-01T00:00:00', ended='2025-01-01T00:01:00',
        command=['python', 'tools/train.py'], config=str(work_dir / 'cfg.py'),
        console_log=str(work_dir / 'console.log'), data_root='data/toy', commit='toy',
        host=socket.gethostname(), pid=os.getpid())))


def make_runner(work_dir: Path, metric: ToyMetric, by_epoch: bool, test: bool = False
                ) -> Runner:
    common = dict(
        model=ToyModel(), work_dir=str(work_dir), randomness=dict(seed=0),
        # A distinct name per runner: mmengine keys its visualizer and logger by it, and two
        # runners in one process and one second would otherwise share one vis_data folder.
        experiment_name=f'toy{time.time_ns()}',
        default_hooks=dict(checkpoint=None,
                           logger=dict(type='LoggerHook', interval=1,
                                       log_metric_by_epoch=by_epoch)),
        log_processor=dict(by_epoch=by_epoch),
        env_cfg=dict(dist_cfg=dict(backend='gloo')))
    if test:
        return Runner(test_dataloader=loader(), test_cfg=dict(), test_evaluator=[metric],
                      **common)
    train_cfg = (dict(by_epoch=True, max_epochs=2, val_interval=1) if by_epoch
                 else dict(by_epoch=False, max_iters=4, val_interval=2))
    return Runner(train_dataloader=loader(), train_cfg=train_cfg,
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
                  val_dataloader=loader(), val_cfg=dict(), val_evaluator=[metric], **common)


@pytest.mark.slow
def test_reporter_reads_real_mmengine_logs(tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / 'work_dirs' / 'table4' / 'smoke' / ROW
    ToyMetric.reported.clear()

    cls_dir, det_dir, seg_dir = (root / task / 'seed0' for task in ('cls', 'det', 'seg'))
    for task, work_dir in (('cls', cls_dir), ('det', det_dir), ('seg', seg_dir)):
        run_json(work_dir, task)
    make_runner(cls_dir, ToyMetric('accuracy', {'top1': 100.0}), by_epoch=True).train()
    make_runner(det_dir, ToyMetric('coco', {'bbox_mAP': 1.0, 'segm_mAP': 1.0}),
                by_epoch=True).train()
    det = ToyMetric.reported[-1]
    make_runner(seg_dir, ToyMetric(None, {'mIoU': 100.0, 'aAcc': 100.0}), by_epoch=False).train()
    seg = ToyMetric.reported[-1]
    # The test-mode run needs its own timestamp folder: mmengine names them by the second.
    train_folder = next(p.name for p in cls_dir.iterdir() if p.is_dir())
    while time.strftime('%Y%m%d_%H%M%S') == train_folder:
        time.sleep(0.05)
    make_runner(cls_dir, ToyMetric('accuracy', {'top1': 100.0, 'top5': 100.0}), by_epoch=True,
                test=True).test()
    cls_test = ToyMetric.reported[-1]['accuracy/top1']
    assert sorted(p.name for p in cls_dir.iterdir() if p.is_dir())[0] == train_folder

    assert cli.main(['table4', '--out', 'out', '--no-complexity']) == 0
    text = (tmp_path / 'out' / 'table4.md').read_text()
    row = next(line for line in text.splitlines() if line.startswith('| conv1 - conv2 - concat'))
    cells = [c.strip() for c in row.strip('|').split(' | ')]

    def cell(ours: float, published: float) -> str:
        return f'{fmt1(ours)} n=1 ({fmt1(published)}, {fmt_delta(ours, published)})'

    assert cells[1] == cell(cls_test, 82.3)                    # the newer test JSON
    assert cells[2] == cell(det['coco/bbox_mAP'] * 100, 46.4)  # 0-1 shown x100
    assert cells[3] == cell(det['coco/segm_mAP'] * 100, 41.8)
    assert cells[4] == cell(seg['mIoU'], 46.0)

    with open(tmp_path / 'out' / 'table4.csv') as f:
        records = {r['metric']: r for r in csv.DictReader(f)}
    assert records['top1']['log_path'].endswith('.json')
    assert Path(records['top1']['log_path']).parent.name != train_folder
    assert float(records['top1']['value']) == pytest.approx(cls_test)
    assert records['box_ap']['step'] == '2'   # epoch-based: the step is the epoch
    assert records['miou']['step'] == '4'     # iteration-based: the step is the iteration

    assert cli.main(['table4', '--out', 'best', '--no-complexity', '--pick', 'best']) == 0
    with open(tmp_path / 'best' / 'table4.csv') as f:
        best = {r['metric']: r for r in csv.DictReader(f)}
    seg_values = [r['mIoU'] for r in ToyMetric.reported if 'mIoU' in r]
    assert len(seg_values) == 2 and seg_values[0] > seg_values[1]
    assert float(best['miou']['value']) == pytest.approx(seg_values[0])
    assert best['miou']['step'] == '2'
    capsys.readouterr()
