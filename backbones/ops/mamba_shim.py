"""The one place that imports mamba-ssm.

mamba-ssm 2.3.2.post1 imports its compiled module ``selective_scan_cuda`` at import time. On a
machine without CUDA it is installed without kernels (MAMBA_SKIP_CUDA_BUILD=TRUE) and that import
fails with "No module named 'selective_scan_cuda'". We stand a placeholder module in for it just
long enough to import the package, so ``selective_scan_ref`` (pure PyTorch) stays usable on CPU,
and report the CUDA kernel as unavailable. Nothing else in the suite touches mamba_ssm.
"""
from __future__ import annotations

import importlib
import sys
import types
from functools import lru_cache
from typing import Callable, Optional

__all__ = ['mamba_ssm_version', 'selective_scan_ref', 'selective_scan_cuda_fn', 'has_cuda_kernels']


class MambaSSMUnavailable(ImportError):
    """mamba-ssm is not installed, or failed to import."""


@lru_cache(maxsize=None)
def _load() -> tuple[types.ModuleType, bool]:
    """Import mamba_ssm's scan interface; returns (module, whether the CUDA kernels are real)."""
    try:
        importlib.import_module('selective_scan_cuda')
        has_kernels = True
    except ImportError:
        has_kernels = False
    placeholder = None
    if not has_kernels:
        placeholder = types.ModuleType('selective_scan_cuda')
        placeholder.__doc__ = 'placeholder: mamba-ssm was built without its CUDA kernels'
        sys.modules['selective_scan_cuda'] = placeholder
    try:
        interface = importlib.import_module('mamba_ssm.ops.selective_scan_interface')
    except ImportError as exc:
        raise MambaSSMUnavailable(f'cannot import mamba_ssm: {exc}') from exc
    finally:
        # Leave no trace: later code asking for selective_scan_cuda gets the real ImportError.
        if placeholder is not None and sys.modules.get('selective_scan_cuda') is placeholder:
            del sys.modules['selective_scan_cuda']
    return interface, has_kernels


def mamba_ssm_version() -> str:
    _load()
    return importlib.import_module('mamba_ssm').__version__


def has_cuda_kernels() -> bool:
    """True when mamba-ssm's compiled selective-scan kernels are importable."""
    try:
        return _load()[1]
    except MambaSSMUnavailable:
        return False


def selective_scan_ref() -> Callable:
    """mamba-ssm's exact, sequential pure-PyTorch scan (runs on any device)."""
    return _load()[0].selective_scan_ref


def selective_scan_cuda_fn() -> Optional[Callable]:
    """mamba-ssm's CUDA ``selective_scan_fn``, or None where its kernels were not built."""
    interface, has_kernels = _load()
    return interface.selective_scan_fn if has_kernels else None
