"""``./run_all.sh doctor [TABLE] [table options]``: can this machine (or cluster) run the table?

One line per check, ``ok``, ``FAIL`` (with the fix) or ``skip`` (with why), then a summary; exit
0 only when nothing failed, 1 otherwise, 2 for a bad option. The checks:

- ``versions``: every pin of ``requirements/pins.txt`` against what is installed;
- ``mamba-ssm``: it imports against this torch (a kernel built for another torch/CUDA/ABI
  fails here, as it would in the first iteration of a run);
- ``mmcv ops``: nms and RoIAlign forward and backward on the device the runs use;
- ``scan kernel``: mamba-ssm's CUDA kernel, forward and backward, against the exact scan on a
  small input (GPU only);
- ``data/<dataset>``: the layout under ``--data-root`` and one decoded sample per dataset;
- ``disk``: free space where the runs write against the table's checkpoint footprint;
- ``gpu memory``: the peak the plan (``./run_all.sh plan``) measured against this GPU's memory;
- ``slurm``: the partition exists and a job starts (``--launcher slurm``);
- ``all-reduce``: across the processes a run asks for (``--gpus``): nccl on GPUs, gloo on CPU
  processes standing in for GPUs (``runs.executors.devices``).

With ``--launcher slurm`` the checks run as one short job shaped like the table's largest run
(its nodes, tasks and GPUs), on the partition the table will use; this command waits for it and
prints its lines.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ablations import TASKS, get_table
from ablations.table_files import table_reference
from ablations.compose import DATA_LAYOUT, DEFAULT_SMOKE_DATA, check_data_root
from engine.process_group import BASE_PORT
from runs import console
from runs.executors.devices import cores, visible_gpus
from runs.executors.launch import python_env
from runs.executors.slurm import (
    SlurmExecutor,
    SlurmOptions,
    sbatch_directives,
    slurm_queue,
)
from runs.options import DEFAULT_WORK_DIR
from runs.provenance import REPO, read_pins
from runs.rundir import RunKey
from runs.table.graph import Run, plan_runs

STATUSES = ('ok', 'FAIL', 'skip')
# The doctor's own job is short whatever --time the table asks for (a short job starts sooner).
JOB_TIME = '00:15:00'
IMAGE_SUFFIXES = ('.jpeg', '.jpg', '.png')


@dataclass
class Check:
    name: str
    status: str  # ok | FAIL | skip
    text: str

    def line(self) -> str:
        return f'{self.status:<4}  {self.name:<16} {self.text}'


def ok(name: str, text: str) -> Check:
    return Check(name, 'ok', text)


def fail(name: str, text: str, fix: str) -> Check:
    return Check(name, 'FAIL', f'{text}; fix: {fix}')


def skip(name: str, why: str) -> Check:
    return Check(name, 'skip', why)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


# --- environment ----------------------------------------------------------------------------

def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _own_torch() -> bool:
    """Whether the environment sits on an interpreter's own torch (SUITE_PYTHON: the venv sees
    its base's site-packages, and setup_env.sh installs no torch of its own)."""
    cfg = Path(sys.prefix) / 'pyvenv.cfg'
    try:
        return 'include-system-site-packages = true' in cfg.read_text()
    except OSError:
        return False


def check_versions() -> Check:
    pins = read_pins()
    own_torch = _own_torch()
    wrong, missing = [], []
    optional = {name: version for name, version in read_pins(optional=True).items()
                if _installed(name)}  # a tracker installed by --vis is held to its pin too
    for name, version in {**pins, **optional}.items():
        if own_torch and name in ('torch', 'torchvision'):
            continue
        try:
            found = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if found.split('+')[0] != version:
            wrong.append(f'{name} {found} (pinned {version})')
    if wrong or missing:
        what = '; '.join(wrong + [f'{m} missing' for m in missing])
        return fail('versions', what, f'rebuild the environment from the pins: '
                    f'rm -rf {sys.prefix} && ./run_all.sh setup')
    note = ' (torch: SUITE_PYTHON\'s own)' if own_torch else ''
    return ok('versions', f'{len(pins) - 2 * own_torch} packages as pinned in '
              f'requirements/pins.txt{note}')


def check_mamba_ssm() -> Check:
    from backbones.ops import mamba_shim
    try:
        version = mamba_shim.mamba_ssm_version()
    except Exception as err:  # noqa: BLE001  (a kernel for another torch fails in many ways)
        import torch
        return fail('mamba-ssm', f'does not import with torch {torch.__version__}: '
                    f'{_first_line(err)}', f'rebuild it against this torch: rm -rf {sys.prefix} '
                    '&& ./run_all.sh setup (on a GPU node: SUITE_PYTHON=<python with the CUDA '
                    'torch> and nvcc on PATH)')
    kernels = 'CUDA kernels built' if mamba_shim.has_cuda_kernels() else \
        'no CUDA kernels (the exact PyTorch scan runs)'
    return ok('mamba-ssm', f'{version} imports; {kernels}')


def _device() -> str:
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def check_mmcv_ops() -> Check:
    import torch
    device = _device()
    try:
        import mmcv
        from mmcv.ops import RoIAlign, nms
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]],
                             dtype=torch.float32, device=device)
        _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=device), iou_threshold=0.5)
        feats = torch.randn(1, 4, 16, 16, device=device, requires_grad=True)
        rois = torch.tensor([[0, 2.0, 2.0, 10.0, 10.0]], device=device)
        RoIAlign((3, 3), spatial_scale=1.0, sampling_ratio=2)(feats, rois).sum().backward()
        if keep.tolist() != [0, 2] or not float(feats.grad.abs().sum()) > 0:
            raise RuntimeError(f'wrong results (nms kept {keep.tolist()}, expected [0, 2])')
    except Exception as err:  # noqa: BLE001
        return fail('mmcv ops', f'nms/RoIAlign on {device}: {_first_line(err)}',
                    'rebuild mmcv with its ops for this device: rm -rf '
                    f'{sys.prefix} && ./run_all.sh setup (on a GPU node with nvcc on PATH)')
    return ok('mmcv ops', f'mmcv {mmcv.__version__}: nms, RoIAlign forward and backward on '
              f'{device}')


def check_scan_kernel(tol: float = 1e-3) -> Check:
    """mamba-ssm's kernel against our exact scan, forward and every input's gradient."""
    import torch

    from backbones.ops import selective_scan
    from backbones.ops.mamba_shim import has_cuda_kernels
    if not torch.cuda.is_available():
        return skip('scan kernel', 'no GPU')
    if not has_cuda_kernels():
        return fail('scan kernel', 'mamba-ssm was built without its CUDA kernels (training '
                    'would run the slow exact scan)', 'rebuild on a GPU node with nvcc: '
                    f'rm -rf {sys.prefix} && SUITE_PYTHON=<python with the CUDA torch> '
                    './run_all.sh setup')
    gen = torch.Generator().manual_seed(0)
    b, d, length, n = 2, 32, 96, 8
    inputs = dict(u=torch.randn(b, d, length, generator=gen),
                  delta=torch.randn(b, d, length, generator=gen) - 2,
                  A=-torch.exp(0.5 * torch.randn(d, n, generator=gen)),
                  B=torch.randn(b, n, length, generator=gen),
                  C=torch.randn(b, n, length, generator=gen), D=torch.randn(d, generator=gen),
                  z=torch.randn(b, d, length, generator=gen),
                  delta_bias=0.5 * torch.randn(d, generator=gen))
    grad_out = torch.randn(b, d, length, generator=gen).cuda()
    results = {}
    try:
        for backend in ('cuda', 'torch'):
            leaves = {k: v.cuda().requires_grad_() for k, v in inputs.items()}
            out = selective_scan(**leaves, delta_softplus=True, backend=backend)
            grads = torch.autograd.grad(out, list(leaves.values()), grad_out)
            results[backend] = [out.detach(), *grads]
        worst = max(float((a - e).abs().max() / e.abs().max().clamp_min(1e-12))
                    for a, e in zip(results['cuda'], results['torch']))
    except Exception as err:  # noqa: BLE001  (a kernel for another GPU arch fails here)
        return fail('scan kernel', f'the kernel does not run: {_first_line(err)}',
                    f'rebuild mamba-ssm for this GPU: rm -rf {sys.prefix} && ./run_all.sh setup')
    if not worst <= tol:
        return fail('scan kernel', f'kernel and exact scan differ by {worst:.1e} (relative; '
                    f'tolerance {tol:g})', 'rebuild mamba-ssm against this torch and CUDA')
    return ok('scan kernel', f'forward and backward equal the exact scan to {worst:.1e} '
              f'(tolerance {tol:g}) on {torch.cuda.get_device_name()}')


# --- data -----------------------------------------------------------------------------------

DATASET_NAMES = dict(cls='imagenet', det='coco', seg='ade20k')


def _first_file(folder: Path, suffixes: Sequence[str], depth: int = 1) -> Optional[Path]:
    """The first image (by name) in ``folder`` or, ``depth`` 2, in its first class subfolder
    that has one; without listing a whole ImageNet."""
    if not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir()):
        if depth > 1 and entry.is_dir():
            found = _first_file(entry, suffixes, depth - 1)
            if found:
                return found
        elif depth == 1 and entry.suffix.lower() in suffixes:
            return entry
    return None


def _decode(path: Path, flag: str = 'color'):
    import mmcv
    image = mmcv.imfrombytes(path.read_bytes(), flag=flag)
    if image is None or image.size == 0:
        raise ValueError(f'{path} does not decode as an image')
    return image


def _sample(task: str, folder: Path) -> str:
    """Decode one sample of the task's dataset; what it was, or ValueError saying what is wrong."""
    if task == 'cls':
        found = []
        for split in ('train', 'val'):
            path = _first_file(folder / split, IMAGE_SUFFIXES, depth=2)
            if path is None:
                raise ValueError(f'no image in {folder / split}/<wnid>/')
            image = _decode(path)
            found.append(f'{path.relative_to(folder)} {image.shape[1]}x{image.shape[0]}')
        return ', '.join(found)
    if task == 'det':
        ann_file = folder / 'annotations' / 'instances_val2017.json'
        try:
            coco = json.loads(ann_file.read_text())
            image_info = coco['images'][0]
            n_ann = sum(a['image_id'] == image_info['id'] for a in coco['annotations'])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
            raise ValueError(f'{ann_file} is not a COCO instances file with images '
                             f'({_first_line(err)})') from None
        image = _decode(folder / 'val2017' / image_info['file_name'])
        if _first_file(folder / 'train2017', IMAGE_SUFFIXES) is None:
            raise ValueError(f'no image in {folder / "train2017"}')
        return (f'val2017/{image_info["file_name"]} {image.shape[1]}x{image.shape[0]} with '
                f'{n_ann} annotation(s)')
    path = _first_file(folder / 'images' / 'training', IMAGE_SUFFIXES)
    if path is None:
        raise ValueError(f'no image in {folder / "images" / "training"}')
    label_path = folder / 'annotations' / 'training' / f'{path.stem}.png'
    if not label_path.exists():
        raise ValueError(f'{path.name} has no label map {label_path}')
    image, label = _decode(path), _decode(label_path, flag='unchanged')
    if label.shape[:2] != image.shape[:2] or label.ndim != 2:
        raise ValueError(f'{label_path.name} is {label.shape}, not a label map of its image '
                         f'{image.shape[:2]}')
    if int(label.max()) > 150 and int(label.max()) != 255:
        raise ValueError(f'{label_path.name} has class {int(label.max())}; ADE20K has 0..150')
    return f'images/training/{path.name} {image.shape[1]}x{image.shape[0]} and its label map'


def check_data(tasks: Sequence[str], data_root: Path) -> list[Check]:
    checks = []
    for task in tasks:
        name = f'data/{DATASET_NAMES[task]}'
        layout = f'--data-root must hold {DATA_LAYOUT[task]["layout"]}'
        try:
            folder = check_data_root(task, data_root)
            checks.append(ok(name, f'{folder}: {_sample(task, folder)} decoded'))
        except FileNotFoundError as err:
            checks.append(fail(name, _first_line(err).split(': ', 1)[-1].rstrip('.'), layout))
        except Exception as err:  # noqa: BLE001  (anything a decoder says about a bad file)
            checks.append(fail(name, _first_line(err), layout))
    return checks


# --- what the table will take ----------------------------------------------------------------

def _free_probe(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_disk(planned: list[Run], data_root: Path, work_dir: Path) -> Check:
    """Free space where the runs write against their checkpoints (``runs.table.footprint``)."""
    from runs.rundir.identity import run_config
    from runs.table.footprint import checkpoint_footprint, format_bytes, table_footprint
    if not planned:
        return skip('disk', 'no table given (./run_all.sh doctor TABLE ...)')
    footprints, cache = [], {}
    for run in planned:
        key = (run.key.row, run.key.task, run.gpus)
        if key not in cache:
            try:
                cfg, _ = run_config(run.key, data_root=data_root, work_dir=run.dir,
                                    gpus=run.gpus)
                cache[key] = checkpoint_footprint(cfg)
            except Exception as err:  # noqa: BLE001
                return fail('disk', f'{run.name}: its config or model does not build '
                            f'({_first_line(err)})', 'see ./run_all.sh '
                            f'{table_reference(run.key.table)} --dry-run')
        footprints.append(cache[key])
    need = table_footprint(footprints)
    probe = _free_probe(work_dir)
    free = shutil.disk_usage(probe).free
    if need['peak_bytes'] is None:
        return fail('disk', 'some runs keep every checkpoint (no max_keep_ckpts): unbounded',
                    'set max_keep_ckpts in their configs')
    what = (f'{len(planned)} run(s) keep {format_bytes(need["total_bytes"])} of checkpoints, '
            f'{format_bytes(need["peak_bytes"])} at peak; {probe} has {format_bytes(free)} free')
    if free < need['peak_bytes']:
        return fail('disk', what, f'free {format_bytes(need["peak_bytes"] - free)} there or '
                    'point --work-dir at a larger filesystem')
    return ok('disk', what)


def check_gpu_memory(planned: list[Run], report_dir: Optional[str]) -> Check:
    """The plan's measured peak of each selected run against this GPU's memory."""
    import torch

    from runs.commands.planner import load_plan
    if not torch.cuda.is_available():
        return skip('gpu memory', 'no GPU')
    if not planned:
        return skip('gpu memory', 'no table given')
    table = planned[0].key.table
    plan = load_plan(table, report_dir)
    entries = {f'{r.key.row}/{r.key.task}': plan.get(f'{r.key.row}/{r.key.task}')
               for r in planned}
    measured = {k: e for k, e in entries.items()
                if e and e.get('status') == 'ok' and e.get('peak_mem_gib')}
    if not measured:
        return skip('gpu memory', f'no plan measured these runs: ./run_all.sh plan {table}')
    have = min(torch.cuda.get_device_properties(i).total_memory
               for i in range(torch.cuda.device_count())) / 2 ** 30
    name, worst = max(measured.items(), key=lambda kv: kv[1]['peak_mem_gib'])
    what = (f'{name} peaked at {worst["peak_mem_gib"]:.1f} GiB in the plan '
            f'({worst.get("device", "?")}); this GPU has {have:.1f} GiB')
    if worst['peak_mem_gib'] > have:
        return fail('gpu memory', what, f'run on GPUs with at least '
                    f'{worst["peak_mem_gib"]:.0f} GiB (SLURM: --partition or --sbatch-args '
                    '"--constraint=...")')
    return ok('gpu memory', what)


# --- SLURM and the process group -------------------------------------------------------------

def slurm_partitions() -> tuple[list[str], Optional[str]]:
    """(every partition, the default one) as sinfo lists them; ValueError without sinfo."""
    try:
        out = subprocess.run(['sinfo', '-h', '-o', '%P'], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ValueError(f'sinfo does not answer ({_first_line(err)})') from None
    if out.returncode != 0:
        raise ValueError(f'sinfo failed: {out.stderr.strip()}')
    names = [p.strip() for p in out.stdout.split()]
    default = next((p.rstrip('*') for p in names if p.endswith('*')), None)
    return sorted({p.rstrip('*') for p in names}), default


def check_partition(partition: Optional[str]) -> Check:
    try:
        names, default = slurm_partitions()
    except ValueError as err:
        return fail('slurm partition', str(err), 'run doctor on the cluster\'s login node')
    wanted = partition or default
    if wanted is None:
        return fail('slurm partition', 'no --partition and the cluster has no default one',
                    f'--partition, one of: {", ".join(names)}')
    if wanted not in names:
        return fail('slurm partition', f'unknown SLURM partition {wanted!r}; valid: '
                    f'{", ".join(names)}',
                    f'--partition {names[0] if len(names) == 1 else "<one of them>"}')
    return ok('slurm partition', f'{wanted} exists')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def allreduce_worker() -> int:
    """One process of the all-reduce check (``python -m runs.commands.doctor_checks --allreduce-worker``): the
    process group as a run's processes set it up, then sum rank+1 over it."""
    import torch
    import torch.distributed as dist
    if 'RANK' not in os.environ and 'SLURM_PROCID' in os.environ:
        from engine.process_group import (
            _slurm_environment,  # what mmengine's slurm launcher derives
        )
        _slurm_environment()
    rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    device = 'cpu'
    if backend == 'nccl':
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        device = 'cuda'
    dist.init_process_group(backend, timeout=dt.timedelta(seconds=120))
    value = torch.tensor([float(rank + 1)], device=device)
    dist.all_reduce(value)
    dist.destroy_process_group()
    print(json.dumps(dict(rank=rank, world=world, backend=backend, host=socket.gethostname(),
                          sum=float(value.item()))), flush=True)
    return 0 if value.item() == world * (world + 1) / 2 else 1


def _allreduce_result(outputs: str, processes: int) -> Check:
    reports = []
    for line in outputs.splitlines():
        try:
            reports.append(json.loads(line))
        except ValueError:
            continue
    expected = processes * (processes + 1) / 2
    good = [r for r in reports if r.get('sum') == expected]
    if len(good) != processes:
        tail = ' | '.join(outputs.strip().splitlines()[-3:])
        return fail('all-reduce', f'{len(good)} of {processes} process(es) reduced correctly '
                    f'({tail or "no output"})', 'check the nodes\' network and NCCL/gloo '
                    'set-up (NCCL_DEBUG=INFO shows why)')
    hosts = sorted({r['host'] for r in good})
    return ok('all-reduce', f'{processes} process(es), {good[0]["backend"]}, on '
              f'{", ".join(hosts)}: sum {expected:g} as expected')


def check_allreduce(processes: int, inside_slurm: bool, timeout: float = 180) -> Check:
    """Sum over ``processes`` processes as a run of that many GPUs starts them: srun tasks in a
    SLURM allocation, local processes otherwise (one per GPU, or CPU processes with gloo)."""
    worker = [sys.executable, '-m', 'runs.commands.doctor_checks', '--allreduce-worker']
    env = python_env()
    try:
        if inside_slurm:
            env['MASTER_PORT'] = str(BASE_PORT + int(os.environ.get('SLURM_JOB_ID', 0)) % 2000)
            out = subprocess.run(['srun', f'--ntasks={processes}', '--kill-on-bad-exit=1',
                                  *worker], capture_output=True, text=True, env=env,
                                 timeout=timeout, cwd=REPO)
            return _allreduce_result(out.stdout + out.stderr, processes)
        gpus = visible_gpus()
        if gpus and processes > len(gpus):
            return fail('all-reduce', f'--gpus {processes}: this machine has {len(gpus)} GPU(s)',
                        f'--gpus {len(gpus)} or --launcher slurm')
        if not gpus and processes > cores():
            return fail('all-reduce', f'--gpus {processes}: no GPU, and CPU processes stand in '
                        f'for GPUs only up to this machine\'s {cores()} cores',
                        f'--gpus {cores()} or --launcher slurm')
        env.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()),
                   WORLD_SIZE=str(processes), OMP_NUM_THREADS='1')
        procs = [subprocess.Popen(worker, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=REPO,
                                  env=dict(env, RANK=str(r), LOCAL_RANK=str(r)))
                 for r in range(processes)]
        outputs = []
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                outputs.append(proc.communicate(timeout=max(1, deadline - time.monotonic()))[0])
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                raise
        return _allreduce_result(''.join(outputs), processes)
    except subprocess.TimeoutExpired:
        return fail('all-reduce', f'no result within {timeout:g} s', 'check the nodes\' '
                    'network and NCCL/gloo set-up (NCCL_DEBUG=INFO shows why)')


# --- the checks, here or as a SLURM job ------------------------------------------------------

@dataclass(frozen=True)
class DoctorOptions:
    """What ``./run_all.sh doctor`` checks for: a table's selection (or none) on a launcher."""
    table: Optional[str] = None
    profile: str = 'smoke'
    rows: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    gpus: dict[str, int] = field(default_factory=lambda: {t: 1 for t in TASKS})
    launcher: str = 'none'
    data_root: Optional[str] = None
    work_dir: str = str(DEFAULT_WORK_DIR)
    report_dir: Optional[str] = None
    slurm: SlurmOptions = SlurmOptions()
    job_timeout: float = 600  # seconds the doctor's job may wait in the queue

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> 'DoctorOptions':
        data = json.loads(text)
        return cls(**dict(data, rows=tuple(data['rows']), tasks=tuple(data['tasks']),
                          slurm=SlurmOptions(**data['slurm'])))


def selection(options: DoctorOptions) -> list[Run]:
    if not options.table:
        return []
    table = get_table(options.table)
    return plan_runs(table, options.rows, options.tasks, 1, Path(options.work_dir).resolve(),
                     options.profile, dict(options.gpus))


def data_root_of(options: DoctorOptions) -> tuple[Path, Optional[Check]]:
    """The data root the checks read; for smoke without one, the generated data (made here as
    the table command makes it)."""
    if options.data_root:
        return Path(options.data_root).expanduser().resolve(), None
    if options.profile == 'full':
        return Path('.').resolve(), fail('data', 'the full profile needs --data-root DIR',
                                         '--data-root DIR with imagenet/, coco/, ade/ under it')
    from runs.datasets.tiny_datasets import make_tiny_datasets
    return make_tiny_datasets(DEFAULT_SMOKE_DATA).resolve(), None


def local_checks(options: DoctorOptions, inside_slurm: bool = False,
                 emit: Callable[[Check], None] = lambda c: None) -> list[Check]:
    """Every check but the partition's, on this machine (or inside the doctor's SLURM job)."""
    planned = selection(options)
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        emit(check)

    for check in (check_versions, check_mamba_ssm, check_mmcv_ops, check_scan_kernel):
        add(check())
    data_root, problem = data_root_of(options)
    tasks = sorted({r.key.task for r in planned}, key=TASKS.index) or list(TASKS)
    if problem:
        add(problem)
    else:
        for check in check_data(tasks, data_root):
            add(check)
    add(check_disk(planned, data_root, Path(options.work_dir)))
    add(check_gpu_memory(planned, options.report_dir))
    if inside_slurm:
        add(ok('slurm job', f'job {os.environ.get("SLURM_JOB_ID")} started on '
                        f'{os.environ.get("SLURM_JOB_NODELIST", socket.gethostname())}'))
    elif options.launcher != 'slurm':
        add(skip('slurm', f'--launcher {options.launcher}'))
    processes = max([r.gpus for r in planned] or [max(options.gpus.values())])
    add(check_allreduce(processes, inside_slurm))
    return checks


def largest_run(options: DoctorOptions) -> Run:
    """The run whose allocation the doctor's job copies: the most GPUs of the selection."""
    planned = selection(options)
    if planned:
        return max(planned, key=lambda r: r.gpus)
    task, gpus = max(options.gpus.items(), key=lambda kv: kv[1])
    key = RunKey.train(options.table or 'table4', options.profile, 'doctor', task, 0)
    return Run(key, key.dir(options.work_dir), gpus)


def doctor_job_script(options: DoctorOptions, out: Path, results: Path,
                      options_file: Path) -> str:
    """A batch script shaped like the largest run's (nodes, tasks, GPUs, cores, partition,
    account, qos, mem), but short, that runs the checks and writes their results."""
    run = largest_run(options)
    layout = SlurmExecutor(options.slurm, Path(options.work_dir)).layout(run.gpus,
                                                                        run.key.profile)
    _, *directives = sbatch_directives('doctor', layout, run.key.profile, options.slurm)
    directives = [d for d in directives if not d.split()[1].startswith('--time')]
    command = [sys.executable, '-m', 'runs.commands.doctor_checks', '--inside-job',
               str(results), str(options_file)]
    return '\n'.join([
        '#!/bin/bash', '#SBATCH --job-name=doctor', f'#SBATCH --output={out}',
        f'#SBATCH --time={JOB_TIME}', *directives, '',
        f'cd {shlex.quote(str(REPO))}',
        f'export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}',
        'export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}',
        f'exec {shlex.join(command)}', ''])


def slurm_checks(options: DoctorOptions, emit: Callable[[Check], None]) -> list[Check]:
    """The partition here; then everything else as one job on the cluster, waited for."""
    partition = check_partition(options.slurm.partition)
    emit(partition)
    if partition.status == 'FAIL':
        rest = skip('other checks', 'no job submitted: the partition check failed')
        emit(rest)
        return [partition, rest]
    folder = Path(options.work_dir).resolve() / '.doctor'
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime('%Y%m%d_%H%M%S')
    out, results = folder / f'doctor-{stamp}.out', folder / f'doctor-{stamp}.json'
    script = folder / f'doctor-{stamp}.sbatch'
    options_file = folder / f'doctor-{stamp}.options.json'
    options_file.write_text(options.to_json())
    script.write_text(doctor_job_script(options, out, results, options_file))
    command = ['sbatch', '--parsable', *shlex.split(options.slurm.sbatch_args or ''),
               str(script)]
    submitted = subprocess.run(command, capture_output=True, text=True)
    if submitted.returncode != 0:
        check = fail('slurm job', f'sbatch refused the job: {submitted.stderr.strip()}',
                     f'adjust the SLURM options (script: {script})')
        emit(check)
        return [partition, check]
    job = submitted.stdout.strip().split(';')[0]
    queued = time.monotonic()
    started, reason = None, ''
    deadline = queued + options.job_timeout
    while True:
        queue = slurm_queue(strict=True)
        if queue is not None:
            state, reason = queue.get(job, (None, ''))
            if started is None and state != 'PENDING':
                started = time.monotonic()
            if state is None:
                break
        if started is None and time.monotonic() > deadline:
            subprocess.run(['scancel', job], capture_output=True)
            check = fail('slurm job', f'job {job} did not start within {options.job_timeout:g} s '
                         f'({reason or "no reason given"})', 'a partition with free nodes, '
                         'or a longer --job-timeout')
            emit(check)
            return [partition, check]
        time.sleep(1)
    try:
        found = [Check(**c) for c in json.loads(results.read_text())]
    except (OSError, ValueError, TypeError) as err:
        tail = ' | '.join(out.read_text().strip().splitlines()[-3:]) if out.exists() else ''
        check = fail('slurm job', f'job {job} ended without results ({_first_line(err)}; {tail})',
                     f'see {out}')
        emit(check)
        return [partition, check]
    waited = f'after {started - queued:.0f} s in the queue' if started else ''
    for check in found:
        if check.name == 'slurm job':
            check.text += f' {waited}'.rstrip()
        emit(check)
    return [partition, *found]


def summary(checks: list[Check]) -> str:
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    line = f'doctor: {counts["ok"]} ok, {counts["FAIL"]} FAIL, {counts["skip"]} skip'
    return line + (': fix the FAIL lines before queuing a table' if counts['FAIL'] else
                   ': ready to queue')


def run_checks(options: DoctorOptions, emit: Callable[[Check], None]) -> list[Check]:
    """Every check, here or (``--launcher slurm``) in a job on the cluster, each given to
    ``emit`` as it is known."""
    with console.quiet_toolkits():  # the checks' own lines only
        if options.launcher == 'slurm':
            return slurm_checks(options, emit)
        return local_checks(options, emit=emit)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The processes the doctor starts itself: the all-reduce workers, and its checks inside
    its SLURM job (``--inside-job RESULTS OPTIONS_JSON``). The command is ``tools/doctor.py``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['--allreduce-worker']:
        return allreduce_worker()
    if argv[:1] == ['--inside-job'] and len(argv) == 3:
        options = DoctorOptions.from_json(Path(argv[2]).read_text())
        with console.quiet_toolkits():
            checks = local_checks(options, inside_slurm=True)
        Path(argv[1]).write_text(json.dumps([asdict(c) for c in checks], indent=1))
        return 0
    print('usage: python -m runs.commands.doctor_checks --allreduce-worker | --inside-job '
          'RESULTS OPTIONS_JSON (the command is ./run_all.sh doctor)', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
