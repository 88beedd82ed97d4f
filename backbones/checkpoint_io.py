"""The one way this suite reads a checkpoint file: never by running code from it.

A ``.pth`` file is a pickle, and unpickling can call any function the file names (a file made
to run ``os.system`` does so the moment it is loaded). So every load (``convert``, ``eval``, the
distillation teacher, mmengine's ``load_from``, ``resume`` and ``Pretrained`` init, which reach
files through :class:`mmengine.runner.checkpoint.CheckpointLoader`) goes through
:func:`load_checkpoint`: ``torch.load(weights_only=True)``, which rebuilds tensors and plain
containers only, plus the few plain classes in :data:`ALLOWED_GLOBALS` that the checkpoints
we read really contain, each listed with where it comes from. Anything else is refused with
:class:`UnsafeCheckpointError`, one line naming the global and the file; the command-line
fronts print it and exit 2. ``--trust-checkpoint`` (:func:`trust_checkpoints`) loads a file
the user trusts fully with ``weights_only=False``.

Importing ``backbones`` installs :func:`load_from_local_safe` as mmengine's loader for local
paths (every config imports ``backbones``), so a Runner never unpickles a local file any other way.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Optional

import torch

__all__ = ['CheckpointError', 'UnsafeCheckpointError', 'ALLOWED_GLOBALS', 'allowed_globals',
           'load_checkpoint', 'trust_checkpoints', 'install_mmengine_loader']


class CheckpointError(ValueError):
    """A file that cannot be used as the checkpoint asked for; the message is one line."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose unpickling would call something outside the allowlist."""


# What the checkpoints this suite reads contain beyond torch's defaults (tensors, OrderedDict,
# containers, numbers, strings, dtypes), each with where it comes from. Rebuilding them runs no
# code from the file: torch creates an allowlisted class with ``__new__`` and fills its
# ``__dict__`` (HistoryBuffer: mmengine's own ``__setstate__``), numpy's constructors build
# arrays, scalars and dtypes. tests/test_safe_loading.py checks the list against real files of
# each kind: every entry is needed by one of them, and nothing else is.
ALLOWED_GLOBALS: tuple[tuple[str, str], ...] = (
    ('argparse.Namespace',
     'official MambaVision (timm CheckpointSaver): "args", the training command line'),
    ('mmengine.logging.history_buffer.HistoryBuffer',
     'mmengine: "message_hub" keeps the logged scalars in HistoryBuffers'),
    ('builtins.getattr',
     'mmengine: a HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, '
     '"mean"); only that is allowed (see _history_buffer_method), no other getattr'),
    ('numpy.core.multiarray._reconstruct',
     'mmengine: the HistoryBuffers hold numpy arrays (np.ndarray.__reduce__ names this)'),
    ('numpy.ndarray', 'mmengine: the HistoryBuffers\' arrays'),
    ('numpy.dtype', 'mmengine: the dtype of those arrays and of numpy scalars'),
    ('numpy.core.multiarray.scalar',
     'mmengine: numpy scalars (a logged value kept in the message hub)'),
)


# Types that are never named in a file but whose instances BUILD fills: numpy.dtype('f8', ...)
# returns an instance of numpy.dtypes.Float64DType (numpy >= 1.25), then sets its state.
NUMPY_DTYPE_CLASSES = ('Float16DType', 'Float32DType', 'Float64DType', 'Int8DType',
                       'Int16DType', 'Int32DType', 'Int64DType', 'UInt8DType', 'UInt16DType',
                       'UInt32DType', 'UInt64DType', 'BoolDType')


def _history_buffer_method(owner, name: str):
    """``getattr`` as the allowlist has it: HistoryBuffer's own statistics methods only."""
    import pickle
    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and name in ('mean', 'max', 'min', 'current'):
        return getattr(HistoryBuffer, name)
    where = getattr(owner, '__qualname__', type(owner).__name__)
    raise pickle.UnpicklingError(f'Unsupported global: GLOBAL getattr({where},{name!r}) was not '
                                 f'an allowed global')


# Allowlisted names that stand for a narrower function than the one they name.
_RESTRICTED = {'builtins.getattr': _history_buffer_method}

_TRUSTED = False


def trust_checkpoints(trusted: bool = True) -> None:
    """``--trust-checkpoint``: load every later file of this process with weights_only=False."""
    global _TRUSTED
    _TRUSTED = trusted


def _resolve(name: str) -> Optional[Any]:
    module, _, attr = name.rpartition('.')
    try:
        obj = __import__(module, fromlist=[attr])
        return getattr(obj, attr)
    except (ImportError, AttributeError):  # e.g. numpy < 1.25 has no numpy.dtypes
        return None


def allowed_globals() -> list:
    """The allowlist as torch.serialization wants it: (object, its pickled dotted name)."""
    found = []
    for name, _ in ALLOWED_GLOBALS:
        obj = _RESTRICTED.get(name) or _resolve(name)
        if obj is not None:
            found.append((obj, name))
    for cls in NUMPY_DTYPE_CLASSES:
        obj = _resolve(f'numpy.dtypes.{cls}')
        if obj is not None:
            found.append((obj, f'numpy.dtypes.{cls}'))
    return found


_GLOBAL_IN_ERROR = re.compile(r'GLOBAL (\S+?)(?: was not| whose module)')


def _refused_globals(err: Exception, path: Path) -> Optional[str]:
    """The global(s) torch's safe unpickler refused, as the file names them; None when the
    failure is not a refusal (a damaged or foreign file)."""
    match = _GLOBAL_IN_ERROR.search(str(err))
    if match:
        return match.group(1)
    try:  # reads the pickle's opcodes without executing them (zip-format files)
        allowed = {n for n, _ in ALLOWED_GLOBALS}
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
                 if n not in allowed]
    except Exception:  # noqa: BLE001  (not a zip-format checkpoint: not a refusal we can name)
        return None
    return ', '.join(names) or None


def load_checkpoint(path, map_location: Any = 'cpu', trust: Optional[bool] = None) -> Any:
    """The object a checkpoint file holds, unpickled without running code from it.

    ``trust`` (default: what :func:`trust_checkpoints` set): load with weights_only=False.
    CheckpointError: not a file, not a checkpoint; UnsafeCheckpointError: it names a global
    outside torch's defaults and :data:`ALLOWED_GLOBALS`.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f'{path}: ' + ('is a directory, not a checkpoint file'
                                             if path.is_dir() else 'no such file'))
    if _TRUSTED if trust is None else trust:
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f'{path}: not a PyTorch checkpoint ({_first_line(err)})') \
                from None
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001  (sorted into refused / not a checkpoint)
        refused = _refused_globals(err, path)
        if refused:
            raise UnsafeCheckpointError(
                f'{path}: refused to load: unpickling it would call {refused}, which is not on '
                f'the allowlist of plain checkpoint contents (backbones/checkpoint_io.py); pass '
                f'--trust-checkpoint only if you trust this file fully') from None
        raise CheckpointError(f'{path}: not a PyTorch checkpoint ({_first_line(err)})') from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


def load_from_local_safe(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file checkpoint loader, through :func:`load_checkpoint`."""
    return load_checkpoint(filename, map_location=map_location)


def install_mmengine_loader() -> Callable:
    """Make :func:`load_from_local_safe` mmengine's loader for local paths (idempotent).

    mmengine's ``Runner.resume``/``load_checkpoint`` and ``Pretrained`` init all read files
    through ``CheckpointLoader``; its own local loader is a bare ``torch.load``. Remote schemes
    (http, s3, ...) keep mmengine's loaders, which call ``torch.load`` with torch's safe default.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safe, force=True)
    return load_from_local_safe
