"""One run, start to end: the process both executors start for a run dir (the local executor as
a child, SLURM from the run's batch script).

    python -m runs.executors.job RUN_DIR

It takes the run's lock (see ``runs.rundir.RunLock``) and hands it to the training process it starts, so
the lock is free only once both are gone; a second job for the same run finds it held, says who
holds it and exits with :data:`EXIT_LOCKED` without touching the record. It then checks that the
checkpoint the training will resume from is readable (falling back to the newest readable one, or
restarting, and saying so: ``runs.executors.resume``), records the attempt in run.json, trains (the command the runner
stored in the record), and records how it ended. A finished classification run links the
checkpoint its row's det/seg runs start from (``runs.rundir.HANDOVER``).

Signals: SIGTERM/SIGINT stop the training and record ``interrupted``; SIGUSR1 (SLURM's warning
before the time limit, ``--signal=B:USR1@...``) stops it and requeues the job, which resumes.
The training is stopped with SIGTERM: it finishes its iteration and saves where it is
(``engine.preemption``), so the rerun continues from the next sample.
The training dies with this process (PR_SET_PDEATHSIG) if it is killed outright.
"""
from __future__ import annotations

import ctypes
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

from runs import rundir
from runs.executors.resume import repair_resume_point
from runs.rundir import handover_checkpoint, now
from runs.tracking.tracker_runs import end_tracker_runs

EXIT_LOCKED = 75  # EX_TEMPFAIL: another live process owns this run
# What the training prints when a signal stopped it after saving (engine.trainer).
STOPPED = re.compile(r'^train: stopped by (SIG[A-Z0-9]+) after iteration (\d+)', re.M)
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux); a preexec_fn."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the run lock still keeps reruns off
        pass


def link_handover(run_dir: Path) -> Optional[Path]:
    """Point ``final.pth`` at the checkpoint the row's det/seg runs start from (the recipe's
    choice: ``runs.rundir.handover_checkpoint``), as a relative link so the work dir can
    move."""
    target = handover_checkpoint(run_dir)
    if target is None:
        return None
    link = run_dir / rundir.HANDOVER
    tmp = run_dir / (rundir.HANDOVER + '.tmp')
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(target.resolve(), run_dir.resolve()))
    os.replace(tmp, link)
    return link


# --- the job --------------------------------------------------------------------------------

class _Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def _raise_stop(signum: int, frame) -> None:
    raise _Stop(signum)


def _stop_child(proc: subprocess.Popen, grace: float = 60.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class _Attempt:
    """This start of a run, as the record counts it and the console log heads it."""
    number: int
    command: list[str]
    slurm_job: Optional[str]
    resume_note: Optional[str]  # what repair_resume_point had to fix, if anything


def _start_attempt(run_dir: Path, record: dict) -> _Attempt:
    """Record a new attempt as running, after clearing what a previous attempt left that would
    mislead this one: its failure note and an unreadable resume point."""
    (run_dir / rundir.FAILURE_NOTE).unlink(missing_ok=True)
    note = repair_resume_point(run_dir)
    slurm_job = os.environ.get('SLURM_JOB_ID')
    attempt = _Attempt(int(record.get('attempts') or 0) + 1,
                       [str(c) for c in record['command']], slurm_job, note)
    rundir.write_record(run_dir, status='running', returncode=None, started=now(), ended=None,
                        host=socket.gethostname(), pid=os.getpid(), attempts=attempt.number,
                        slurm_job_id=slurm_job or record.get('slurm_job_id'), error=None,
                        failure=None, resume_note=note)
    return attempt


def _log_attempt(log: TextIO, attempt: _Attempt) -> None:
    """Head the attempt's output in the console log, which gathers every attempt of the run."""
    log.write(f'\n=== {now()} attempt {attempt.number} on {socket.gethostname()}'
              f'{f" (SLURM job {attempt.slurm_job})" if attempt.slurm_job else ""}: '
              f'{shlex.join(attempt.command)}\n')
    if attempt.resume_note:
        log.write(f'=== {attempt.resume_note}\n')
        print(f'job: {attempt.resume_note}', flush=True)
    log.flush()


def _stop_training(proc: Optional[subprocess.Popen], signum: int, log: TextIO) -> str:
    """Stop the training so that it saves where it is, and say so in the console log; the
    signal's name."""
    if proc is not None:
        _stop_child(proc)
    name = signal.Signals(signum).name
    log.write(f'=== {now()} stopped by {name}\n')
    log.flush()  # (after a USR1, SLURM's SIGTERM ends this process unflushed)
    return name


def _record_interrupted(run_dir: Path, record: dict, proc: Optional[subprocess.Popen],
                        signum: int, name: str) -> int:
    """Record a stopped run as interrupted, which its rerun resumes; the exit status of a
    process killed by ``signum``."""
    rundir.write_record(run_dir, status='interrupted', ended=now(),
                        returncode=proc.returncode if proc else None,
                        error=f'stopped by {name}')
    end_tracker_runs(record, 'interrupted')
    return 128 + signum


def _requeue(run_dir: Path, record: dict, lock: rundir.RunLock, slurm_job: str,
             name: str) -> int:
    """Near the time limit: leave the job to SLURM's requeue; the next start resumes."""
    rundir.write_record(run_dir, status='queued', ended=now(),
                        error=f'requeued before the time limit ({name})')
    end_tracker_runs(record, 'interrupted')  # until the requeued attempt resumes
    lock.release()
    # Exiting first would end the job COMPLETED (and start its dependants): ask for
    # the requeue, then wait for SLURM's SIGTERM to end this attempt.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    subprocess.run(['scontrol', 'requeue', slurm_job], check=False)
    time.sleep(600)
    return 1


def _handled_stop(console: Path) -> Optional[tuple[str, int]]:
    """(signal, iteration) when this attempt's training stopped on a signal sent to it, not
    through this job (``kill -INT`` on the training, a scheduler signalling every process): it
    saved where it was and says so in its last lines (``engine.trainer``). Such a run is
    waiting to resume, not failed."""
    try:
        with open(console, 'rb') as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            tail = f.read().decode('utf-8', 'replace')
    except OSError:
        return None
    attempt = tail.rsplit('\n=== ', 1)[-1]  # this attempt's lines only
    found = STOPPED.findall(attempt)
    return (found[-1][0], int(found[-1][1])) if found else None


def _record_end(run_dir: Path, record: dict, returncode: int) -> int:
    """Record how the training ended, handing a finished cls run's checkpoint over to its
    row's det/seg runs; the exit status."""
    if returncode == EXIT_LOCKED:  # the training found another live holder (started by hand)
        return EXIT_LOCKED
    stop = _handled_stop(run_dir / rundir.CONSOLE) if returncode != 0 else None
    if stop is not None:
        name, iteration = stop
        rundir.write_record(run_dir, status='interrupted', returncode=returncode, ended=now(),
                            error=f'stopped by {name} after iteration {iteration} (the signal '
                                  'went to the training); run the table again to resume')
        end_tracker_runs(record, 'interrupted')
        return 128 + int(getattr(signal.Signals, name, signal.SIGTERM))
    if returncode == 0:
        link = link_handover(run_dir) if record.get('task') == 'cls' else None
        rundir.write_record(run_dir, status='finished', returncode=0, ended=now(),
                            handover=str(link) if link else None)
    else:
        # The training's own reason when it gave one (a NaN loss, a full disk: engine.hardening).
        failure_note, console = run_dir / rundir.FAILURE_NOTE, run_dir / rundir.CONSOLE
        reason = failure_note.read_text().strip() if failure_note.is_file() else ''
        rundir.write_record(run_dir, status='failed', returncode=returncode, ended=now(),
                            failure=reason or None,
                            error=reason or f'training exited with {returncode}; see {console}')
        end_tracker_runs(record, 'failed')
    return 0 if returncode == 0 else 1


def run_job(run_dir: Path) -> int:
    """One attempt of the run in ``run_dir``, start to end; the exit status for the executor."""
    run_dir = run_dir.resolve()
    record = rundir.read_record(run_dir)
    if record is None or not record.get('command'):
        print(f'job: {run_dir} has no run record with a command; the runner writes it',
              file=sys.stderr)
        return 2
    lock = rundir.RunLock(run_dir)
    if not lock.acquire():
        print(f'job: a live training of {run_dir} is running (pid/host '
              f'{rundir.lock_holder(run_dir)}); not starting a second one', file=sys.stderr)
        return EXIT_LOCKED
    attempt = _start_attempt(run_dir, record)
    env = dict(os.environ, SUITE_RUN_LOCK_FD=str(lock.file.fileno()))
    handlers = {s: signal.signal(s, _raise_stop)
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    proc = None
    with open(run_dir / rundir.CONSOLE, 'a') as log:
        _log_attempt(log, attempt)
        try:
            proc = subprocess.Popen(attempt.command, cwd=record.get('cwd') or None, env=env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    pass_fds=(lock.file.fileno(),), preexec_fn=die_with_parent)
            rundir.write_record(run_dir, child_pid=proc.pid)
            returncode = proc.wait()
        except _Stop as stop:
            name = _stop_training(proc, stop.signum, log)
            if stop.signum == signal.SIGUSR1 and attempt.slurm_job:
                return _requeue(run_dir, record, lock, attempt.slurm_job, name)
            return _record_interrupted(run_dir, record, proc, stop.signum, name)
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
    return _record_end(run_dir, record, returncode)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print('usage: python -m runs.executors.job RUN_DIR', file=sys.stderr)
        return 2
    return run_job(Path(argv[0]))


if __name__ == '__main__':
    sys.exit(main())
