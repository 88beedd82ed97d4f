"""Evaluate one config's model with given weights, as OpenMMLab's ``tools/test.py`` does: a thin
front for ``engine.tester`` (``python -m engine.tester``), the test process ``eval`` starts.

    python tools/test.py CONFIG --work-dir DIR --weights FILE [--fuse-bn]
        [--launcher none|pytorch|slurm] [--trust-checkpoint]
"""
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.tester import main  # noqa: E402

if __name__ == '__main__':
    main()
