"""``python -m reports <table> ...``: see :mod:`reports.cli`."""
import sys

from .cli import main

sys.exit(main())
