"""``./run_all.sh doctor``: it passes here on the smoke profile, and each planted fault gives
``FAIL`` and exit 1 (one test per check): a wrong data layout, a full disk (a tiny tmpfs), an
unknown SLURM partition (the real test cluster), mamba-ssm that does not import against this
torch (a broken package shadowing the real one). Every run is one row's cls run, to stay cheap.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runs.commands.doctor_checks import check_data
from tools.doctor import main as doctor_main
from runs.executors.launch import python_env

REPO = Path(__file__).resolve().parent.parent
ONE_RUN = ['table4', '--rows', 'conv2-concat', '--tasks', 'cls']
LINE = re.compile(r'(ok  |FAIL|skip)  \S.*|doctor: \d+ ok, \d+ FAIL, \d+ skip: .+')


def _checks(out: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, text), after asserting every line is the doctor's own."""
    lines = out.strip().splitlines()
    assert lines and all(LINE.fullmatch(line) for line in lines), out
    return {line[6:22].strip(): (line[:4].strip(), line[23:]) for line in lines[:-1]}


@pytest.mark.slow
def test_doctor_passes_here_on_the_smoke_profile(tmp_path, capsys):
    # two CPU processes stand in for two GPUs: the all-reduce runs over both (gloo)
    assert doctor_main([*ONE_RUN, '--gpus', '2', '--launcher', 'pytorch',
                        '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    checks = _checks(out)
    for name in ('versions', 'mamba-ssm', 'mmcv ops', 'data/imagenet', 'disk', 'all-reduce'):
        assert checks[name][0] == 'ok', out
    assert 'sum 3 as expected' in checks['all-reduce'][1] and 'gloo' in checks['all-reduce'][1]
    assert checks['slurm'] == ('skip', '--launcher pytorch')
    if not torch.cuda.is_available():
        assert checks['scan kernel'] == ('skip', 'no GPU')
        assert checks['gpu memory'] == ('skip', 'no GPU')
    assert out.strip().splitlines()[-1].startswith('doctor: ') and '0 FAIL' in out


@pytest.mark.slow
def test_wrong_data_layout_fails(tmp_path, capsys):
    data = tmp_path / 'data'
    (data / 'imagenet' / 'train' / 'n01440764').mkdir(parents=True)  # no val/
    assert doctor_main([*ONE_RUN, '--profile', 'full', '--data-root', str(data),
                        '--work-dir', str(tmp_path / 'work')]) == 1
    out = capsys.readouterr().out
    status, text = _checks(out)['data/imagenet']
    assert status == 'FAIL' and 'lacks val' in text and 'imagenet/train/<wnid>/*.JPEG' in text
    assert 'fix the FAIL lines' in out.splitlines()[-1]


def test_a_sample_that_does_not_decode_fails(tmp_path):
    """The layout is right but the first image is not one: the decoded-sample half of the
    data check (called directly: the rest of the doctor is the test above)."""
    data = tmp_path / 'data'
    for split in ('train', 'val'):
        folder = data / 'imagenet' / split / 'n01440764'
        folder.mkdir(parents=True)
        (folder / 'n01440764_1.JPEG').write_bytes(b'not a jpeg')
    [check] = check_data(['cls'], data)
    assert check.status == 'FAIL' and 'does not decode' in check.text, check


@pytest.mark.slow
def test_full_disk_fails(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    disk = tmp_path / 'disk'
    disk.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(disk)], check=True)
    try:
        code = doctor_main([*ONE_RUN, '--work-dir', str(disk / 'work')])
    finally:
        subprocess.run(['umount', str(disk)], check=True)
    out = capsys.readouterr().out
    status, text = _checks(out)['disk']
    assert code == 1 and status == 'FAIL', out
    assert f'{disk} has' in text and 'point --work-dir at a larger filesystem' in text


def test_unknown_slurm_partition_fails(tmp_path, capsys):
    assert shutil.which('sinfo') and subprocess.run(['sinfo'], capture_output=True).returncode \
        == 0, 'no SLURM cluster answers: start it with tools/slurm_local.sh'
    assert doctor_main([*ONE_RUN, '--launcher', 'slurm', '--partition', 'nope',
                        '--work-dir', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    status, text = _checks(out)['slurm partition']
    assert status == 'FAIL' and "unknown SLURM partition 'nope'; valid: " in text, out
    assert not (tmp_path / '.doctor').exists()  # nothing was submitted


@pytest.mark.slow
def test_broken_mamba_ssm_import_fails(tmp_path):
    """A mamba-ssm built for another torch fails at import with an undefined symbol; a package
    of the same name first on the path does exactly that, in a fresh interpreter."""
    shadow = tmp_path / 'shadow' / 'mamba_ssm'
    shadow.mkdir(parents=True)
    (shadow / '__init__.py').write_text(
        'raise ImportError("selective_scan_cuda.cpython-311-x86_64-linux-gnu.so: undefined '
        'symbol: _ZN3c104cuda9SetDeviceEi")\n')
    env = python_env()
    env['PYTHONPATH'] = os.pathsep.join([str(shadow.parent), env['PYTHONPATH']])
    out = subprocess.run([sys.executable, '-m', 'tools.doctor', *ONE_RUN,
                          '--work-dir', str(tmp_path / 'work')], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status, text = _checks(out.stdout)['mamba-ssm']  # and no line but the doctor's own
    assert out.returncode == 1 and status == 'FAIL', out.stdout
    assert 'undefined symbol' in text and 'rebuild it against this torch' in text


@pytest.mark.parametrize('argv, names', [
    (['table9'], ['table9', 'table4']),
    (['table4', '--rows', 'nope'], ["'nope'", 'conv2-concat']),
    (['table4', '--gpus', 'cls=x'], ['cls=x']),
    (['--launcher', 'local'], ['local', 'slurm']),
])
def test_bad_options_are_one_line_and_exit_2(capsys, argv, names):
    with pytest.raises(SystemExit) as exc:
        doctor_main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert all(name in err for name in names), err


@pytest.mark.slow
def test_with_slurm_the_checks_run_as_one_job_on_the_cluster(tmp_path, capsys):
    """On the real test cluster: one job shaped like the largest run (two tasks for --gpus 2),
    whose lines come back here; the all-reduce spans its two srun tasks."""
    assert shutil.which('sbatch'), 'no SLURM here: start the test cluster (tools/slurm_local.sh)'
    assert doctor_main([*ONE_RUN, '--launcher', 'slurm', '--gpus', '2',
                        '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    checks = _checks(out)
    assert checks['slurm partition'][0] == 'ok' and checks['slurm job'][0] == 'ok', out
    job = re.match(r'job (\d+) started on ', checks['slurm job'][1]).group(1)
    assert checks['all-reduce'][0] == 'ok' and '2 process(es), gloo' in checks['all-reduce'][1]
    # its batch script asked for the run's two tasks and ran the checks inside the job
    [script] = (tmp_path / '.doctor').glob('doctor-*.sbatch')
    assert '#SBATCH --ntasks-per-node=2' in script.read_text()
    assert '--inside-job' in script.read_text() and job
