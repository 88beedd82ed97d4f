"""Train (and evaluate) one config with mmengine's Runner, for mmpretrain, mmdet and mmseg alike.

The toolkits' own tools/train.py scripts do the same; they ship inside their source trees, not
their wheels, so the suite carries this one. The config's ``default_scope`` picks the toolkit.

    python tools/train.py CONFIG --work-dir DIR [--resume] [--launcher none|pytorch|slurm]
        [--cfg-options key=value ...]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# mmengine 0.10.7 resumes with plain torch.load(); since torch 2.6 that defaults to
# weights_only=True and refuses mmengine's checkpoints (they hold the message hub and numpy
# scalars). Our runs only load checkpoints they wrote themselves or the user points them at.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from runs.devices import prepare_distributed  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with mmengine')
    parser.add_argument('config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--resume', action='store_true',
                        help='resume from the newest checkpoint in the work dir, if any')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def hold_run_lock(work_dir: str):
    """Hold the run dir's lock for as long as this training lives (rank 0; see runs.RunLock).

    Started by runs/job.py the lock comes inherited (SUITE_RUN_LOCK_FD) and is already held;
    started by hand, take it here, so that two trainings never share a run dir.
    """
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if os.environ.get('SUITE_RUN_LOCK_FD') or int(rank) != 0:
        return None
    import runs
    lock = runs.RunLock(work_dir)
    if not lock.acquire():
        print(f'train.py: a live training of {work_dir} is running (pid/host '
              f'{runs.lock_holder(work_dir)}); not starting a second one', file=sys.stderr)
        sys.exit(75)
    return lock


def main(argv=None) -> None:
    args = parse_args(argv)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    lock = hold_run_lock(args.work_dir)  # noqa: F841  (held until the process exits)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    cfg.launcher = args.launcher
    prepare_distributed(cfg, args.launcher)  # CPU processes: gloo, where there is no GPU
    if args.resume:
        # load_from=None + resume=True: mmengine finds the work dir's last checkpoint itself and
        # starts from scratch when there is none.
        cfg.resume = True
        cfg.load_from = None
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
