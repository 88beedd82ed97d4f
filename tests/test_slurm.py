"""Smoke tables through ``--launcher slurm`` on a real SLURM cluster: one node, and two more.

The cluster comes from tools/slurm_local.sh (started by ``./run_all.sh test`` and by CI). The
test queues two rows of Table 4 on hold, plants a failure in one row's cls config, releases the
jobs and follows them with ``status`` to the end: det/seg start after their cls run finished, a
cls job sent SLURM's USR1 (its warning before the time limit) mid-run requeues itself and resumes
from the checkpoint it saved, the failed cls run blocks its dependants, and the report job runs
after everything.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest

from runs import rundir
from runs.rundir import RunKey
from runs.executors.slurm import slurm_queue
from tools.status import main as status_main
from runs.datasets.tiny_datasets import make_tiny_datasets
from tools.run_table import main as run_table

GOOD, BAD = 'conv2-concat', 'conv2-gate'
TIMEOUT = 900


def _require_cluster() -> None:
    missing = [c for c in ('sbatch', 'squeue', 'scontrol') if shutil.which(c) is None]
    assert not missing, f'no SLURM here ({", ".join(missing)} missing): start the test cluster ' \
                        'with tools/slurm_local.sh (./run_all.sh test does)'
    out = subprocess.run(['sinfo', '-h', '-o', '%t'], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip(), \
        f'SLURM does not answer (sinfo: {out.stderr.strip()}); run tools/slurm_local.sh'


def _key(row: str, task: str) -> RunKey:
    return RunKey.train('table4', 'smoke', row, task, 0)


def _wait(predicate, what: str, timeout: float = TIMEOUT, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f'timed out waiting for {what}')


def _ended_attempt(run_dir):
    """The run's record once it no longer says running, else None."""
    record = rundir.read_record(run_dir) or {}
    return record if record.get('status', 'running') != 'running' else None


@pytest.mark.slow
def test_table_as_a_slurm_job_graph(tmp_path, capsys):
    _require_cluster()
    work, reports = tmp_path / 'work', tmp_path / 'reports'
    data = make_tiny_datasets(tmp_path / 'data')
    assert run_table(['table4', '--launcher', 'slurm', '--rows', f'{GOOD},{BAD}',
                      '--work-dir', str(work), '--data-root', str(data),
                      '--report-dir', str(reports), '--sbatch-args=--hold']) == 0
    out = capsys.readouterr().out
    job = {(row, task): rundir.read_record(_key(row, task).dir(work))['slurm_job_id']
           for row in (GOOD, BAD) for task in ('cls', 'det', 'seg')}
    report_job = re.search(r'report: queued as SLURM job (\d+)', out).group(1)
    assert all(job.values()), out
    assert f'(after afterok:{job[GOOD, "cls"]})' in out
    # The batch script is in the run dir, resubmittable by hand.
    script = (_key(GOOD, 'cls').dir(work) / 'job.sbatch').read_text()
    assert '#SBATCH --requeue' in script and '-m runs.executors.job' in script

    try:
        # Everything is queued (held); status says so and exits non-zero.
        assert status_main(['table4', '--work-dir', str(work)]) == 1
        listing = capsys.readouterr().out
        assert re.search(rf'^queued +{job[GOOD, "cls"]} .*{GOOD}/cls/seed0', listing, re.M), listing
        # A planted failure: the bad row's cls config no longer loads.
        (_key(BAD, 'cls').dir(work) / rundir.CONFIG).write_text('raise SystemExit("planted")\n')
        subprocess.run(['scontrol', 'release', ','.join([*job.values(), report_job])],
                       check=True)

        # SLURM's warning before the time limit (#SBATCH --signal=B:USR1@...), sent now to the
        # good cls job's batch shell once it has saved a checkpoint but not finished: the job
        # stops the training (which saves where it is) and requeues itself. (An outside
        # `scontrol requeue` is test_a_run_spans_two_nodes_and_resumes_after_requeue's.)
        good_cls = _key(GOOD, 'cls').dir(work)
        _wait(lambda: (good_cls / 'last_checkpoint').exists() or
              rundir.read_record(good_cls)['status'] == 'finished', 'a first checkpoint', poll=0.1)
        assert rundir.read_record(good_cls)['status'] == 'running', \
            'the cls run finished before it could be requeued'
        subprocess.run(['scancel', '--batch', '--signal=USR1', job[GOOD, 'cls']], check=True)
        # The first attempt ends: back in the queue, the record says why (until the second
        # attempt starts).
        stopped = _wait(lambda: _ended_attempt(good_cls), 'the job to stop', poll=0.1)
        assert (stopped['status'], stopped['error']) == \
            ('queued', 'requeued before the time limit (SIGUSR1)'), stopped
        assert status_main(['table4', '--work-dir', str(work)]) == 1
        capsys.readouterr()

        # status follows the queued subset (issue 22): --wait on the good row blocks through
        # the requeue until its three jobs have ended, and exits 0: all three finished.
        assert status_main(['table4', '--work-dir', str(work), '--rows', GOOD, '--wait',
                            '--poll', '1', '--timeout', str(TIMEOUT)]) == 0
        waited = capsys.readouterr().out
        assert re.search(r'^table4: 3 run\(s\): 3 finished$', waited, re.M), waited
        assert all(rundir.read_record(_key(GOOD, t).dir(work))['status'] == 'finished'
                   for t in ('cls', 'det', 'seg'))
        assert BAD not in waited

        # Follow to the end: the report job is the last to run.
        _wait(lambda: report_job not in slurm_queue(), 'the report job')
    finally:
        subprocess.run(['scancel', *job.values(), report_job], capture_output=True)

    record = {key: rundir.read_record(_key(*key).dir(work)) for key in job}
    assert [record[GOOD, t]['status'] for t in ('cls', 'det', 'seg')] == ['finished'] * 3
    # Dependencies honoured: det and seg started only after their cls run ended.
    for task in ('det', 'seg'):
        assert record[GOOD, task]['started'] >= record[GOOD, 'cls']['ended']
        assert record[GOOD, task]['pretrained'].endswith(f'cls/seed0/{rundir.HANDOVER}')
    # USR1 requeued the job: it ran twice, and the second attempt resumed (not restarted) from
    # the checkpoint the first one saved when it was stopped.
    assert record[GOOD, 'cls']['attempts'] == 2
    console = (_key(GOOD, 'cls').dir(work) / rundir.CONSOLE).read_text()
    first, second = console.split(' attempt 2 on ')
    saved = re.search(r'stopped by SIGTERM after iteration (\d+); saved \S*/preempt_iter_\1\.pth',
                      first)
    assert saved, first[-2000:]
    assert re.search(r'^=== .* stopped by SIGUSR1$', first, re.M), first[-2000:]
    resumed = re.search(r'resumed epoch: \d+, iter: (\d+)', second)
    assert resumed and resumed.group(1) == saved.group(1), second[-2000:]
    # The failed cls run blocks its dependants, which never ran.
    assert record[BAD, 'cls']['status'] == 'failed'
    for task in ('det', 'seg'):
        assert 'started' not in record[BAD, task] or not record[BAD, task].get('started')
    # the bad row has ended too, not finished: --wait returns at once with 1
    assert status_main(['table4', '--work-dir', str(work), '--rows', BAD, '--wait',
                        '--poll', '1', '--timeout', '60']) == 1
    assert 'table4: 3 run(s): 1 failed, 2 blocked' in capsys.readouterr().out
    assert status_main(['table4', '--work-dir', str(work)]) == 1
    listing = capsys.readouterr().out
    for task in ('det', 'seg'):
        assert re.search(rf'^blocked .*{BAD}/{task}/seed0', listing, re.M), listing
    # the table's other rows were never asked for: pending
    assert '3 finished, 9 pending, 1 failed, 2 blocked' in listing, listing
    # The report job wrote the table's report, in the same layout as a local run's.
    md = (reports / 'table4' / 'table4.md').read_text()
    assert 'conv1 - conv2 - concat' in md and 'blocked' in md


@pytest.mark.slow
def test_a_run_spans_two_nodes_and_resumes_after_requeue(tmp_path, capsys):
    """``--gpus 4 --gpus-per-node 2`` on the cluster's ``multi`` partition: two nodes (slurmds
    in network namespaces of their own, tools/slurm_local.sh) x two CPU processes, started by
    srun and joined by the slurm launcher; a requeue after the first checkpoint resumes."""
    _require_cluster()
    nodes = subprocess.run(['sinfo', '-h', '-p', 'multi', '-o', '%D'], capture_output=True,
                           text=True).stdout.split()
    assert nodes == ['2'], f'no two-node partition "multi" (sinfo: {nodes}); restart the test ' \
                           'cluster with tools/slurm_local.sh'
    work = tmp_path / 'work'
    data = make_tiny_datasets(tmp_path / 'data')
    assert run_table(['table4', '--launcher', 'slurm', '--rows', GOOD, '--tasks', 'cls',
                      '--gpus', '4', '--gpus-per-node', '2', '--partition', 'multi',
                      '--work-dir', str(work), '--data-root', str(data), '--no-report']) == 0
    assert 'no GPU on its nodes; each GPU of a run is a CPU process' in capsys.readouterr().out
    run_dir = _key(GOOD, 'cls').dir(work)
    script = (run_dir / 'job.sbatch').read_text()
    assert '--nodes=2' in script and '--ntasks-per-node=2' in script and '--gres' not in script
    job = rundir.read_record(run_dir)['slurm_job_id']
    try:
        node_list = _wait(lambda: subprocess.run(['squeue', '-h', '-j', job, '-t', 'R', '-o',
                                                  '%N'], capture_output=True,
                                                 text=True).stdout.strip(), 'the job to start')
        assert node_list == 'simn[1-2]', node_list
        _wait(lambda: (run_dir / 'last_checkpoint').exists(), 'the first checkpoint')
        subprocess.run(['scontrol', 'requeue', job], check=True)
        _wait(lambda: job not in slurm_queue() and (rundir.read_record(run_dir) or {}).get(
            'status') in ('finished', 'failed'), 'the requeued job to end')
    finally:
        subprocess.run(['scancel', job], capture_output=True)
    record = rundir.read_record(run_dir)
    console = (run_dir / rundir.CONSOLE).read_text()
    assert record['status'] == 'finished', console[-3000:]
    assert record['attempts'] == 2 and record['host'] == 'simn1'
    assert 'GPU number: 4' in console and 'Distributed launcher: slurm' in console
    assert re.search(r'resumed epoch: \d+, iter: [1-9]\d*', console), console[-3000:]
    assert record['fidelity']['gpus'] == 4 and record['fidelity']['device'] == 'cpu'


def test_one_run_through_the_slurm_executor(tmp_path):
    """The quick stand-in of the job-graph tests: the SLURM executor queues one run (a stand-in
    training that prints and exits 0) with its batch script, SLURM starts the run's job, and the
    job records the run finished under that SLURM job."""
    from runs.executors.process_layout import process_layout
    from runs.executors.slurm import SlurmExecutor, SlurmOptions
    from runs.provenance import REPO
    from runs.table.graph import Run
    _require_cluster()
    key = _key(GOOD, 'cls')
    run = Run(key, key.dir(tmp_path), 1, layout=process_layout(1, 'slurm', 'cpu'))
    run.dir.mkdir(parents=True)
    rundir.write_record(run.dir, status='queued', task='cls', cwd=str(REPO),
                        command=['python3', '-c', 'print("trained")'])
    executor = SlurmExecutor(SlurmOptions(time='00:05:00', requeue_before=60), tmp_path)
    executor.execute([run], [run])
    assert run.outcome == 'queued' and run.job_id
    script = (run.dir / 'job.sbatch').read_text()
    assert '#SBATCH --signal=B:USR1@60\n' in script and '#SBATCH --time=00:05:00\n' in script
    record = _wait(lambda: (rundir.read_record(run.dir) or {}).get('status') == 'finished'
                   and rundir.read_record(run.dir), 'the job to finish', timeout=120)
    assert record['slurm_job_id'] == run.job_id and record['attempts'] == 1
    assert 'trained' in (run.dir / rundir.CONSOLE).read_text()


def test_sbatch_passes_the_slurm_options_through():
    """docs/full_profile.md: --partition, --account, --qos, --time, --mem reach sbatch as given,
    --cpus-per-gpu is each task's cores, --requeue-before the USR1 warning (no cluster needed)."""
    from runs.executors.process_layout import process_layout
    from runs.table.graph import Run
    from tools.run_table import parse_args
    options = parse_args(['table4', '--profile', 'full', '--launcher', 'slurm', '--gpus', '16',
                          '--partition', 'p1', '--account', 'a1', '--qos', 'q1', '--time',
                          '2-00:00:00', '--mem', '200G', '--cpus-per-gpu', '7',
                          '--requeue-before', '900', '--sbatch-args=--constraint=a100'])
    key = RunKey.train('table4', 'full', GOOD, 'cls', 0)
    run = Run(key, key.dir('/w'), 16, layout=process_layout(16, 'slurm', 'gpu'))
    from runs.executors.slurm import sbatch_script
    lines = set(sbatch_script(run, options.executor).splitlines())
    assert {'#SBATCH --partition=p1', '#SBATCH --account=a1', '#SBATCH --qos=q1',
            '#SBATCH --time=2-00:00:00', '#SBATCH --mem=200G', '#SBATCH --cpus-per-task=7',
            '#SBATCH --signal=B:USR1@900', '#SBATCH --requeue', '#SBATCH --nodes=2',
            '#SBATCH --ntasks-per-node=8', '#SBATCH --gres=gpu:8'} <= lines, sorted(lines)
    assert options.executor.sbatch_args == '--constraint=a100'  # given to sbatch itself
