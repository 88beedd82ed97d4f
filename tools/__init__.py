"""Command-line fronts: each file parses its arguments and calls a package (``ablations``,
``backbones``, ``runs``, ``reports``); nothing below imports from here."""
