"""Reduced-cost full runs: the official recipe on real data with a scaled schedule
(``--schedule-scale F``) and/or ImageNet-100 (``--subset in100``), and the profile name that
keeps such runs apart from full ones (their identity and run dir: ``full@0.1+in100``).

A reduced run is never a reproduction: ``compose`` records each reduction as a deviation and the
report labels its cells (``ours @0.1 in100``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SUBSET_DIR = Path(__file__).resolve().parent / 'subsets'
# name -> (the class list, what it is); the list's provenance is in its file's header
SUBSETS = {
    'in100': (SUBSET_DIR / 'imagenet100_cmc.txt',
              'ImageNet-100, the 100 classes of CMC (Tian et al., 2019)'),
}
REDUCIBLE_PROFILE = 'full'
_NAME = re.compile(r'(?P<profile>[a-z]+)(?:@(?P<scale>[0-9.]+))?(?:\+(?P<subset>[a-z0-9]+))?')


def check_schedule_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise ValueError(f'--schedule-scale {scale!r} must be a number in (0, 1], e.g. 0.1')
    return float(scale)


def check_subset(subset: Optional[str]) -> Optional[str]:
    if subset is not None and subset not in SUBSETS:
        raise ValueError(f'--subset {subset!r} is not known; valid: {", ".join(SUBSETS)}')
    return subset


@dataclass(frozen=True)
class Reduction:
    """How a full run is reduced; the default reduces nothing."""
    schedule_scale: float = 1.0
    subset: Optional[str] = None

    def __post_init__(self):
        check_schedule_scale(self.schedule_scale)
        check_subset(self.subset)

    @property
    def reduced(self) -> bool:
        return self.schedule_scale != 1.0 or self.subset is not None

    @property
    def suffix(self) -> str:
        """What a profile name gains: ``@0.1``, ``+in100``, ``@0.1+in100`` or nothing."""
        scale = f'@{self.schedule_scale:g}' if self.schedule_scale != 1.0 else ''
        return scale + (f'+{self.subset}' if self.subset else '')

    @property
    def label(self) -> str:
        """How the report names a cell of such a run: ``@0.1 in100``."""
        return self.suffix.replace('+', ' ').strip()


def run_profile(profile: str, reduction: Reduction = Reduction()) -> str:
    """The profile a run's identity and run dir carry: ``full``, ``full@0.1``, ``full@0.1+in100``.
    Only the full profile reduces (smoke is already a pipeline check)."""
    if reduction.reduced and profile != REDUCIBLE_PROFILE:
        raise ValueError(f'--schedule-scale and --subset reduce the {REDUCIBLE_PROFILE} profile, '
                         f'not {profile!r}: add --profile {REDUCIBLE_PROFILE}')
    return profile + reduction.suffix


def base_profile(name: str) -> str:
    """``full@0.1+in100`` -> ``full``: what a run of that profile runs on (GPUs, real data)."""
    return split_profile(name)[0]


def split_profile(name: str) -> tuple[str, Reduction]:
    """``full@0.1+in100`` -> ``('full', Reduction(0.1, 'in100'))``: the inverse of
    :func:`run_profile`."""
    match = _NAME.fullmatch(name)
    if not match:
        raise ValueError(f'profile {name!r} is not a profile name such as smoke, full or '
                         f'full@0.1+in100')
    scale = float(match['scale']) if match['scale'] else 1.0
    reduction = Reduction(scale, match['subset'])
    if run_profile(match['profile'], reduction) != name:  # e.g. full@1 or full@0.10
        raise ValueError(f'profile {name!r} is not in its one spelling, '
                         f'{run_profile(match["profile"], reduction)!r}')
    return match['profile'], reduction
