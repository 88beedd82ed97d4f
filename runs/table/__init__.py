"""A table's runs as a job graph: every (row, task, seed) an invocation selects and what it
depends on (graph), what each needs (decide: run, skip, stale) with its config and record written,
the dry run's description, and the orchestration that hands the runs to one executor.
"""
