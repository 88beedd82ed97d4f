"""Train one config, as OpenMMLab's ``tools/train.py`` does: a thin front for ``engine.trainer``,
the training process a run's job starts (``python -m engine.trainer``).

    python tools/train.py CONFIG --work-dir DIR [--resume] [--launcher none|pytorch|slurm]
        [--trust-checkpoint] [--cfg-options key=value ...]

A config the suite generated (``<run dir>/config.py``) runs here alone, without the runner.
"""
import sys
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.trainer import main  # noqa: E402

if __name__ == '__main__':
    main()
