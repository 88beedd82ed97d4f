"""mmengine's W&B and MLflow backends, each continuing the one tracker run a suite run owns.

The training process loads this module through the config's ``custom_imports`` when a run was
started with ``--vis wandb`` or ``--vis mlflow`` (``runs.tracking.tracker_runs`` writes the backends into the
config). The tracker run itself is opened by the runner before the training starts, and its id
kept in ``run.json``, so every attempt of a run (resumed, requeued) logs into the same tracker
run: one unbroken curve.

What differs from mmengine's own backends, and why:
- W&B: ``wandb.init`` gets the suite run's id with ``resume='allow'``, and each log call the
  training iteration as W&B's step. mmengine logs without a step, so W&B counted log calls, and
  a resumed attempt (a new process) started counting again from 0. Validation scalars, which
  mmengine steps by epoch, are logged at the iteration they were computed at (W&B's step must
  not go back), with its timings as ``val/time``, ``val/data_time``. The config is recorded
  without ``log_code`` (it would copy every ``.py`` file under the working directory into the
  run).
- MLflow: the run is continued by id, not started anew under a name. The tracking URI
  comes from ``MLFLOW_TRACKING_URI`` at run time when the config holds none, so a URI with
  credentials in it is never written to ``config.py``. Params, which MLflow never lets change,
  were logged once when the run was opened; the config goes in as a text artifact.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.registry import HOOKS, VISBACKENDS
from mmengine.visualization.vis_backend import (
    MLflowVisBackend,
    WandbVisBackend,
    force_init_env,
)

# mmengine logs an evaluation's timings under the train logs' names; W&B puts an evaluation in
# the row of the iteration it ran at, so these become val/time, val/data_time there.
EVAL_TIMINGS = ('time', 'data_time')


def mlflow_store(uri: Optional[str]) -> str:
    """The tracking URI to use: ``uri``, else MLFLOW_TRACKING_URI. MLflow 3 refuses a file store
    (maintenance mode) without consent, given here: the suite's own store, or one named."""
    uri = uri or os.environ['MLFLOW_TRACKING_URI']
    if uri.startswith('file:'):
        os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')
    return uri


@VISBACKENDS.register_module()
class RunWandbVisBackend(WandbVisBackend):
    """W&B, into the run ``run_id`` of ``project`` (created on first use, resumed after).
    (``run_name``, not ``name``: mmengine's Visualizer takes a backend's ``name`` for itself.)"""

    def __init__(self, save_dir: str, run_id: str, project: str, run_name: str, group: str,
                 job_type: str, tags: Sequence[str] = (), record: Optional[str] = None,
                 record_keys: Sequence[str] = ()):
        super().__init__(save_dir, init_kwargs=dict(
            id=run_id, resume='allow', project=project, name=run_name, group=group,
            job_type=job_type, tags=list(tags)))
        self._last_step = 0
        self._record, self._record_keys = record, tuple(record_keys)

    def _init_env(self):
        # the run's identity and recipe, from its record (which keys: the runner's choice)
        try:
            record = json.loads(open(self._record, encoding='utf-8').read()) \
                if self._record else {}
        except (OSError, ValueError):
            record = {}
        self._init_kwargs['config'] = dict(suite={k: record[k] for k in self._record_keys
                                                  if k in record})
        super()._init_env()

    @force_init_env
    def add_config(self, config, **kwargs) -> None:
        self._wandb.config.update(dict(mmengine=config.to_dict()), allow_val_change=True)

    @force_init_env
    def add_scalar(self, name: str, value, step: int = 0, **kwargs) -> None:
        self.add_scalars({name: value}, step)

    @force_init_env
    def add_scalars(self, scalar_dict: dict, step: int = 0, file_path=None, **kwargs) -> None:
        # train scalars come stepped by iteration; validation by epoch: keep W&B's step the
        # iteration, which only grows
        self._last_step = max(int(step), self._last_step)
        scalars = dict(scalar_dict)
        if 'iter' not in scalars:  # an evaluation: its timings would overwrite the train ones
            scalars = {f'val/{k}' if k in EVAL_TIMINGS else k: v for k, v in scalars.items()}
            # the train iteration it ran after, which a resumed attempt that validates before
            # its first train log (stopped at an epoch's end) knows only from the message hub
            self._last_step = max(self._last_step,
                                  int(MessageHub.get_current_instance().get_info('iter') or 0))
        self._wandb.log(scalars, step=self._last_step)


@VISBACKENDS.register_module()
class RunMLflowVisBackend(MLflowVisBackend):
    """MLflow, into the existing run ``run_id`` (opened by the runner)."""

    def __init__(self, save_dir: str, run_id: str, tracking_uri: Optional[str] = None,
                 exp_name: Optional[str] = None):
        super().__init__(save_dir, exp_name=exp_name, tracking_uri=tracking_uri)
        self._run_id = run_id

    def _init_env(self):
        if self._tracking_uri is None and not os.environ.get('MLFLOW_TRACKING_URI'):
            raise RuntimeError('--vis mlflow: the run was opened on the tracking server of '
                               'MLFLOW_TRACKING_URI, which is not set in this process')
        self._tracking_uri = mlflow_store(self._tracking_uri)
        super()._init_env()
        self._mlflow.start_run(run_id=self._run_id)

    @force_init_env
    def add_config(self, config, **kwargs) -> None:
        self.cfg = config  # close() uploads the run dir's logs and config from cfg.work_dir
        self._mlflow.log_text(config.pretty_text, 'config.py')


@HOOKS.register_module()
class TestMetricsToTrackersHook(Hook):
    """An evaluation's metrics to the trackers: mmengine's LoggerHook writes a test's metrics
    to its JSON log only, never to the visualizer's backends."""
    priority = 'BELOW_NORMAL'  # before LoggerHook's after_run closes the backends

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        scalars = {k: float(v) for k, v in (metrics or {}).items()
                   if isinstance(v, (int, float))}
        if scalars:
            runner.visualizer.add_scalars(scalars, step=0)
