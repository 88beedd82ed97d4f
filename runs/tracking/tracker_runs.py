"""Trackers a run streams to besides its local logs (``--vis tensorboard,wandb,mlflow``), through
mmengine's own backends (W&B and MLflow through the thin subclasses of ``engine.vis_backends``).

One tracker run per suite run, whatever its attempts: the runner opens it before the first
attempt and keeps its id in ``run.json`` (``tracker_runs``), and a resumed or requeued attempt
logs into the same one, so its curve is one unbroken curve. TensorBoard gets one folder per run
(``<run dir>/tensorboard/``) where mmengine's default starts a timestamped folder per attempt.

Names and tags group seeds: the tracker run is named ``<table>/<profile>/<row>/<task>/seed<k>``,
W&B's group is the run without its seed, and table, profile, row, task, seed, config hash and
the fidelity record are tags/config (W&B) or tags/params (MLflow). The local logs are unchanged
(the reporter keeps reading them) and the config hash leaves the trackers out: a run is the same
run with or without them.

Accounts come from each tracker's usual environment (``WANDB_API_KEY`` or ``wandb login``,
``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_MODE``; ``MLFLOW_TRACKING_URI`` and its credential
variables, ``MLFLOW_EXPERIMENT_NAME``) and are read where they are used, never written to the
record, the config or the logs. Without ``MLFLOW_TRACKING_URI``, MLflow logs to a file store
beside the runs, ``<work dir>/mlruns`` (``mlflow ui --backend-store-uri <work dir>/mlruns``).

A tracker's package stays out of the default set-up: it is installed into the environment on
first use at its pin in the optional section of ``requirements/pins.txt`` (the environment's
pins as constraints, so nothing pinned moves), or named in a one-line error.
"""
from __future__ import annotations

import importlib.util
import netrc
import os
import secrets
import string
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Optional, Sequence

from runs.provenance import OPTIONAL_SECTION, PINS, read_pins
from runs.rundir import RECORD, RunKey

TRACKERS = ('tensorboard', 'wandb', 'mlflow')
MODULES = dict(tensorboard='tensorboard', wandb='wandb', mlflow='mlflow')
PACKAGES = dict(tensorboard='tensorboard', wandb='wandb', mlflow='mlflow-skinny')
TENSORBOARD_DIR = 'tensorboard'
WANDB_DIR = 'wandb'
MLFLOW_STORE = 'mlruns'  # under the work dir, when MLFLOW_TRACKING_URI is not set
DEFAULT_WANDB_PROJECT = 'mamba-ablations'
BACKENDS_MODULE = 'engine.vis_backends'
# What of run.json a W&B run's config holds (``config.suite``): the run's identity and recipe.
RECORD_FOR_TRACKERS = ('kind', 'table', 'profile', 'row', 'task', 'seed', 'config_hash',
                       'fidelity', 'checkpoint_sha256')
BACKEND_TYPES = dict(tensorboard='TensorboardVisBackend', wandb='RunWandbVisBackend',
                     mlflow='RunMLflowVisBackend')


def ensure_installed(trackers: Sequence[str]) -> None:
    """Install the trackers' missing packages at their pins, the environment's pins as
    constraints; ValueError (one line) when that fails."""
    pinned = read_pins(optional=True)
    missing = [f'{PACKAGES[t]}=={pinned[PACKAGES[t]]}' for t in trackers
               if importlib.util.find_spec(MODULES[t]) is None]
    if not missing:
        return
    # pip constraints cannot hold two pins of one name: leave the build-only ones out
    environment = PINS.read_text().split('\n' + OPTIONAL_SECTION)[0].splitlines()
    with tempfile.NamedTemporaryFile('w', suffix='.txt') as constraints:
        constraints.write('\n'.join(line for line in environment if 'build-only' not in line))
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


def check_accounts(trackers: Sequence[str]) -> None:
    """ValueError (one line) when a tracker cannot log where the runs will start: W&B online
    with no API key would stop each training at its first log line, hours into a queue."""
    if 'wandb' in trackers and os.environ.get('WANDB_MODE') not in ('offline', 'disabled'):
        host = urllib.parse.urlsplit(os.environ.get('WANDB_BASE_URL')
                                     or 'https://api.wandb.ai').hostname
        try:
            logged_in = netrc.netrc().authenticators(host) is not None
        except (OSError, netrc.NetrcParseError):
            logged_in = False
        if not (os.environ.get('WANDB_API_KEY') or logged_in):
            raise ValueError('--vis wandb: no W&B API key (WANDB_API_KEY unset, no `wandb '
                             f'login` for {host}); set one, or WANDB_MODE=offline to log '
                             'locally and `wandb sync` later')


# --- one tracker run per suite run ----------------------------------------------------------

def mlflow_uri(work_dir: Path) -> Optional[str]:
    """The tracking URI to write into the config: None when MLFLOW_TRACKING_URI names it (read
    again at run time, so a URI with credentials stays out of config.py), else the file store
    beside the runs."""
    if os.environ.get('MLFLOW_TRACKING_URI'):
        return None
    return (Path(work_dir).resolve() / MLFLOW_STORE).as_uri()


def _config_uri(found: dict) -> Optional[str]:
    """The URI a config names for a recorded MLflow run: its file store, else None (the
    environment's, read at run time: the record keeps that one without credentials)."""
    uri = found.get('tracking_uri') or ''
    return uri if uri.startswith('file:') else None


def _public_uri(uri: str) -> str:
    """A tracking URI without the user:password or query a URL may carry, for the record."""
    parts = urllib.parse.urlsplit(uri)
    netloc = (parts.hostname or '') + (f':{parts.port}' if parts.port else '')
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query='', fragment=''))


def _flat(record: Optional[dict], prefix: str = '') -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}: a nested record as MLflow params."""
    flat = {}
    for name, value in (record or {}).items():
        if isinstance(value, dict):
            flat.update(_flat(value, f'{prefix}{name}.'))
        else:
            flat[f'{prefix}{name}'] = str(value)
    return flat


def _open_mlflow(key: RunKey, work_dir: Path, previous: Optional[dict], tags: dict,
                 fidelity: Optional[dict]) -> dict:
    from mlflow.tracking import MlflowClient
    from engine.vis_backends import mlflow_store  # (mmengine: only when MLflow is used)
    uri = mlflow_store(mlflow_uri(work_dir))
    client = MlflowClient(uri)
    if previous and previous.get('run_id'):
        try:
            client.get_run(previous['run_id'])
            return previous
        except Exception:  # another store than the first attempt's: a new run, said below
            print(f'  {key.name}: MLflow run {previous["run_id"]} is not in this tracking '
                  'store; opening a new one', flush=True)
    name = os.environ.get('MLFLOW_EXPERIMENT_NAME') or f'{key.table}/{key.profile}'
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    run = client.create_run(experiment_id, run_name=key.name, tags=tags)
    # MLflow never lets a param change: logged once, here, not by each attempt
    from mlflow.entities import Param
    params = [Param(k, v[:6000]) for k, v in _flat(fidelity, 'fidelity.').items()]
    for start in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[start:start + 100])
    return dict(run_id=run.info.run_id, experiment=name, tracking_uri=_public_uri(uri))


def open_tracker_runs(key: RunKey, trackers: Sequence[str], run_dir: Path, work_dir: Path,
                      previous: Optional[dict], config_hash: Optional[str],
                      fidelity: Optional[dict]) -> dict:
    """The tracker runs of a suite run, {tracker: what finds it}: the ones its record already
    names (a resumed attempt continues them), new ones otherwise."""
    previous = previous or {}
    tags = dict(table=key.table, profile=key.profile, row=key.row, task=key.task,
                run=key.tag, kind=key.kind, config_hash=str(config_hash))
    if key.seed is not None:
        tags['seed'] = str(key.seed)
    opened = {}
    for tracker in trackers:
        if tracker == 'tensorboard':
            opened[tracker] = dict(dir=str(Path(run_dir) / TENSORBOARD_DIR))
        elif tracker == 'wandb':
            alphabet = string.ascii_lowercase + string.digits
            opened[tracker] = previous.get('wandb') or dict(
                id=''.join(secrets.choice(alphabet) for _ in range(8)),
                project=os.environ.get('WANDB_PROJECT') or DEFAULT_WANDB_PROJECT,
                name=key.name, group=key.name.rsplit('/', 1)[0],
                dir=str(Path(run_dir) / WANDB_DIR))
        elif tracker == 'mlflow':
            try:
                opened[tracker] = _open_mlflow(key, work_dir, previous.get('mlflow'), tags,
                                               fidelity)
            except Exception as err:  # a server away, a store refused: one line, not a trace
                first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise ValueError(f'--vis mlflow: could not open a run ({first})') from err
    return opened


def add_trackers(cfg, run_dir: Path, key: RunKey, tracker_runs: dict) -> None:
    """Add the tracker runs' mmengine backends to the config's visualizer (after the config
    hash was taken: trackers are not part of a run's identity). What W&B's config gets of the
    run (RECORD_FOR_TRACKERS) is read from run.json when the training starts, not copied in
    here: every checkpoint formats the whole config, and a nested record made that slow."""
    if not tracker_runs:
        return
    visualizer = cfg.get('visualizer') or dict(type='Visualizer')
    ours = set(BACKEND_TYPES.values())
    backends = [b for b in visualizer.get('vis_backends') or [] if b.get('type') not in ours]
    if 'tensorboard' in tracker_runs:
        backends.append(dict(type=BACKEND_TYPES['tensorboard'],
                             save_dir=tracker_runs['tensorboard']['dir']))
    if 'wandb' in tracker_runs:
        w = tracker_runs['wandb']
        backends.append(dict(
            type=BACKEND_TYPES['wandb'], save_dir=str(run_dir), run_id=w['id'],
            record=str(run_dir / RECORD), record_keys=list(RECORD_FOR_TRACKERS),
            project=w['project'], run_name=w['name'], group=w['group'], job_type=key.task,
            tags=[key.table, key.profile, key.row, key.task, key.tag]))
    if 'mlflow' in tracker_runs:
        m = tracker_runs['mlflow']
        backends.append(dict(type=BACKEND_TYPES['mlflow'], save_dir=str(run_dir),
                             run_id=m['run_id'], tracking_uri=_config_uri(m),
                             exp_name=m['experiment']))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer
    if key.kind == 'eval':  # mmengine sends a test's metrics to no tracker by itself
        cfg.custom_hooks = [*(cfg.get('custom_hooks') or []),
                            dict(type='TestMetricsToTrackersHook')]
    if key.kind == 'eval' or {'wandb', 'mlflow'} & set(tracker_runs):
        imports = dict(cfg.get('custom_imports') or dict(imports=[]))
        imports['imports'] = list(dict.fromkeys([*imports.get('imports', []),
                                                 BACKENDS_MODULE]))
        cfg.custom_imports = imports


def end_tracker_runs(record: dict, status: str) -> None:
    """Say in the trackers how an attempt ended, which its training process cannot: MLflow's
    exit hook ends a stopped process's run FINISHED, and a killed one's stays RUNNING.
    ``interrupted`` -> KILLED, ``failed`` -> FAILED (a resumed attempt sets it RUNNING again).
    Never raises: the record comes first."""
    found = (record.get('tracker_runs') or {}).get('mlflow')
    if not found or status not in ('interrupted', 'failed'):
        return
    try:
        from mlflow.tracking import MlflowClient

        from engine.vis_backends import mlflow_store
        MlflowClient(mlflow_store(_config_uri(found))).set_terminated(found['run_id'],
                                         'KILLED' if status == 'interrupted' else 'FAILED')
    except Exception as err:  # noqa: BLE001  (a tracker away must not lose the record)
        print(f'job: could not mark MLflow run {found.get("run_id")} {status} ({err})',
              flush=True)
