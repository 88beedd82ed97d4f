"""A table's runs as a job graph: which (row, task, seed) runs an invocation selects and what
each depends on (graph), what each needs (decide), the orchestration that hands them to one
executor, and which claims stay open after a round of seeds (sequential, ``--seeds auto``).
"""
