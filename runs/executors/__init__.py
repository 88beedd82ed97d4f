"""Where and how runs start: the process layout (nodes, tasks per node, world size) decided once,
the executors that share one protocol (local processes or SLURM jobs), the job that owns a run
from start to end, and the checkpoint a stopped run resumes from.
"""
