"""The reporter: mmengine run logs -> the papers' ablation tables (markdown, CSV, PNG).

``parsing`` reads run folders into records, ``tabulation`` turns records into the paper's
layout and its claim checks, ``stats`` gives the seed-noise intervals and verdicts,
``rendering`` writes the files, ``fidelity`` states each run's recipe and deviations,
``reference_sections`` sets our runs beside the official ones, ``released`` the evaluations of
released weights, ``complexity_column`` counts params/FLOPs, and ``table_report`` ties them
together (the command: ``tools/report.py``, ``./run_all.sh report <table>``).

Rules the numbers follow (each one is traceable to a file and line, listed in the CSV):

- Which log: of a seed folder's mmengine timestamp folders, the newest that holds an evaluation
  of the task's metrics (a scalars.json line without "iter", or a test-mode
  ``<timestamp>/<timestamp>.json``). Folders with train lines only (partial) or nothing are
  skipped, with a warning when an older folder is used instead. If that newest folder has a
  line that does not parse (truncated, not an object, a metric that is not a number), the cell
  says ``corrupt: <file>:<line>``: falling back to an older folder would pass an earlier
  result off as the final one.
- Which value: ``--pick last`` (default) is the last evaluation in that folder (file order, a
  test JSON after validation lines); ``--pick best`` the highest finite one in that folder,
  said in the header and the notes. A final NaN/inf is ``nan: <file>:<line>``, never averaged.
- run.json decides first: ``failed`` (or finished with a non-zero return code) ->
  ``failed: <console log>``; ``running`` -> ``running``, or ``interrupted`` when it names this
  host and its pid is gone. No run.json: the logs alone decide and the profile is ``unknown``;
  an unreadable run.json makes the run ``corrupt``.
- Profiles are never mixed: the report shows ``--profile`` or, by default, the profile of the
  newest run (by run.json "started"); runs of other profiles are named in the warnings and kept
  in the CSV with ``in_report`` False. Smoke reports open with a banner.
- Seeds: mean ± sample std (n - 1) over the seeds that gave a number, with n; seeds without
  one are listed in the cell (``seed2 failed: ...``). One decimal, rounded half up; the delta is
  ours as printed minus the paper's, signed (``+1.6``, ``-0.3``, ``0.0``).
- Cells: ``ours (published, delta)``; ``n/p`` where the paper publishes no number; ``-`` where
  the row has no run for the metric; ``missing`` for a seed folder without logs, or
  ``missing: <file>`` when its evaluations lack that metric.
- Exit status: 0 report written (warnings on stderr and in the report), 1 nothing could be
  read (no run at all: nothing written; runs but no value: written), 2 bad arguments.
"""
