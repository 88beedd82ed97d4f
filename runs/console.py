"""What the commands print, and what they keep the toolkits from printing."""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet_toolkits() -> Iterator[None]:
    """Silence what the toolkits say while a command only builds configs and models (``--dry-run``,
    ``status``, ``doctor``): their warnings (deprecations, defaults) and mmengine's INFO and
    WARNING log lines, which would interleave with the command's own lines. Errors still show;
    training processes are not affected, so all of it stays in the run logs."""
    previous = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # MMLogger is a logging.Logger outside logging's registry; the global threshold still
        # applies to it.
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def elapsed(seconds: float) -> str:
    """``3m07s``: how long a run or the table took, in the executors' progress lines."""
    return f'{int(seconds // 60)}m{int(seconds % 60):02d}s'
