"""The training process: one config through mmengine's Runner, for mmpretrain, mmdet and mmseg
alike (the config's ``default_scope`` picks the toolkit). What a run's job starts:

    python -m engine.trainer CONFIG --work-dir DIR [--resume] [--launcher none|pytorch|slurm]
        [--trust-checkpoint] [--cfg-options key=value ...]

The toolkits' own tools/train.py scripts do the same; they ship inside their source trees, not
their wheels, so the suite carries this one (``tools/train.py`` is a thin front for it).

Every checkpoint it reads (resume, ``load_from``, ``Pretrained`` init, a distillation teacher)
is unpickled without running code (``backbones.checkpoint_io``); a file that would run code is
refused in one line, exit 2, unless ``--trust-checkpoint``. The loop, checkpointing and loss
check are the preemption-safe, atomic ones of ``engine.hardening``: SIGTERM, SIGINT or SIGUSR1
finish the current iteration, save, and exit 128+signal; a NaN/Inf loss or a full disk exits 3
with its reason in ``<work-dir>/failure.txt``. Before training it prints what it was given:
CPU threads per process and visible GPUs (``--jobs N`` shares them out:
``runs.executors.local``).
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from backbones.checkpoint_io import CheckpointError, trust_checkpoints
from engine import hardening, preemption
from engine.process_group import prepare_distributed
from engine.run_files import FAILURE_NOTE, RunLock, TrainingFailed, lock_holder

EXIT_FAILED = 3  # a NaN/Inf loss or a full disk: the reason is in <work-dir>/failure.txt
PROG = 'train'  # the prefix of its own console lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model with mmengine')
    parser.add_argument('config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--resume', action='store_true',
                        help='resume from the newest checkpoint in the work dir, if any')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load checkpoints with weights_only=False (only files you trust '
                             'fully: unpickling can run code)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


class TextOnceConfig(Config):
    """mmengine's Config, whose yapf-formatted text is computed once per content.

    mmengine formats the whole config again for every checkpoint's meta (and the best-checkpoint
    rule saves twice per epoch); on a CPU that formatting cost more than a smoke run's training.
    The text is keyed by the config's values, so a config changed in between is formatted anew.
    """

    @classmethod
    def of(cls, cfg: Config) -> 'TextOnceConfig':
        same = cls.__new__(cls)
        same.__dict__.update(cfg.__dict__)
        return same

    @property
    def pretty_text(self) -> str:
        key = repr(self.to_dict())
        memo = self.__dict__.get('_pretty_text_memo')
        if memo is None or memo[0] != key:
            memo = (key, Config.pretty_text.fget(self))
            object.__setattr__(self, '_pretty_text_memo', memo)
        return memo[1]


class ConfigKeepingRunner(Runner):
    """mmengine's Runner, except that it never overwrites the config file it was started from.

    mmengine dumps its config to ``<work_dir>/<the config's file name>``: for a run, whose
    config.py is in its own dir, that is the file itself. The dump would drop what the suite wrote
    there beside the values (a table file's folder put on ``sys.path``:
    ``ablations/table_files.py``), and a resumed attempt must start from the config as written;
    so that dump goes to the attempt's log folder (``<work_dir>/<timestamp>/``) instead.
    """

    def dump_config(self) -> None:
        source = Path(self.cfg.filename) if self.cfg.filename else None
        if source is not None and (Path(self.work_dir) / source.name).resolve() == \
                source.resolve():
            self.cfg.dump(str(Path(self.log_dir) / source.name))
        else:
            super().dump_config()


def hold_run_lock(work_dir: str):
    """Hold the run dir's lock for as long as this training lives (rank 0; see runs.RunLock).

    Started by runs.executors.job the lock comes inherited (SUITE_RUN_LOCK_FD) and is already held;
    started by hand, take it here, so that two trainings never share a run dir.
    """
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if os.environ.get('SUITE_RUN_LOCK_FD') or int(rank) != 0:
        return None
    lock = RunLock(work_dir)
    if not lock.acquire():
        print(f'{PROG}: a live training of {work_dir} is running (pid/host '
              f'{lock_holder(work_dir)}); not starting a second one', file=sys.stderr)
        sys.exit(75)
    return lock


def print_share() -> None:
    """One line in the run's console log (rank 0): the CPU threads and GPUs this training was
    given (``--jobs N`` splits the cores, or the GPUs, between the runs at once:
    runs.executors.local)."""
    if int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))) != 0:
        return
    import torch
    gpus = os.environ.get('CUDA_VISIBLE_DEVICES')
    print(f'{PROG}: {torch.get_num_threads()} CPU thread(s) per process, '
          f'{torch.cuda.device_count()} GPU(s) visible'
          f'{f" (CUDA_VISIBLE_DEVICES={gpus})" if gpus is not None else ""}', flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    # Before anything slow: a signal from now on means "finish the iteration, save, stop".
    preemption.install_signal_handlers()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    lock = hold_run_lock(args.work_dir)  # noqa: F841  (held until the process exits)
    (Path(args.work_dir) / FAILURE_NOTE).unlink(missing_ok=True)
    if args.trust_checkpoint:
        trust_checkpoints()
    cfg = TextOnceConfig.of(Config.fromfile(args.config))
    cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    cfg.launcher = args.launcher
    prepare_distributed(cfg, args.launcher)  # CPU processes: gloo, where there is no GPU
    print_share()
    if args.resume:
        # load_from=None + resume=True: mmengine finds the work dir's last checkpoint itself and
        # starts from scratch when there is none.
        cfg.resume = True
        cfg.load_from = None
    hardening.harden_config(cfg)
    try:
        runner = ConfigKeepingRunner.from_cfg(cfg)
        runner.train()
    except CheckpointError as err:  # a file that is no checkpoint, or would run code
        print(f'{PROG}: error: {str(err).splitlines()[0]}', file=sys.stderr)
        sys.exit(2)
    except preemption.Preempted as stop:
        saved = f'saved {stop.path}' if stop.path else 'nothing new to save'
        print(f'{PROG}: {stop}; {saved}', file=sys.stderr, flush=True)
        sys.exit(128 + stop.signum)
    except (TrainingFailed, OSError) as err:
        if isinstance(err, OSError) and err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        reason = str(err) if isinstance(err, TrainingFailed) else \
            f'no space left on device while writing {err.filename or "a file"}'
        hardening.record_failure(args.work_dir, reason)
        print(f'{PROG}: failed: {reason}', file=sys.stderr, flush=True)
        sys.exit(EXIT_FAILED)


if __name__ == '__main__':
    main()
