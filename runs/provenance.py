"""Where a run's code and environment come from: the suite's checkout, its commit, its pins."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Optional, Union

REPO = Path(__file__).resolve().parent.parent
PathLike = Union[str, Path]


def git_commit(repo: PathLike = REPO, short: bool = True) -> Optional[str]:
    """A checkout's commit, the suite's by default (``-dirty`` when tracked files differ from
    it); None outside git."""
    try:
        out = subprocess.run(['git', '-C', str(repo), 'rev-parse', *(['--short'] * short),
                              'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(repo), 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True).stdout.strip()
        return out + ('-dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        return None


PINS = REPO / 'requirements' / 'pins.txt'
# Everything below this line of pins.txt is optional: installed on first use (the trackers of
# --vis), never by tools/setup_env.sh, and left out of the environment's key.
OPTIONAL_SECTION = '# --- optional'


def read_pins(optional: bool = False, path: PathLike = PINS) -> dict[str, str]:
    """name -> version: the environment's runtime pins (``# build-only`` lines are not pins of
    the environment), or with ``optional`` the pins of the optional section."""
    pins, in_optional = {}, False
    for line in Path(path).read_text().splitlines():
        if line.startswith(OPTIONAL_SECTION):
            in_optional = True
        match = re.match(r'\s*([A-Za-z0-9_.\-]+)==([^\s#]+)', line)
        if match and 'build-only' not in line and in_optional == optional:
            pins[match.group(1)] = match.group(2)
    return pins
