"""The engine: which runs a table needs and in what order, their run dirs and records, the process
layout, and an executor (local or SLURM) that starts them; plus the engines of the commands.
Takes typed options (``runs.options``), never the command line's Namespace.

    rundir/     the run dir: layout, record (run.json), lock, states, identity (stale)
    table/      a table's runs as a graph: plan, decide (run, skip, stale), write, describe
    executors/  the process layout and the executors that start runs (local, SLURM), the job
                that owns a run from start to end, and where a stopped run resumes
    tracking/   the trackers' runs (TensorBoard, W&B, MLflow) a suite run streams to
    logs/       training logs as data, the official runs beside ours, a config's lr curve
    commands/   the engines of status, doctor, eval and plan
    datasets/   the generated data of the smoke profile and of the pilots
    options.py  the commands' options as frozen dataclasses
"""
