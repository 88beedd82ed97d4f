"""Turn the official repositories' published training logs into the committed references
(``ablations/reference_runs/<id>.json.gz``): per logged iteration the lr and the loss, per
evaluation the metrics, and the run's GPUs, batch, s/iter, memory and wall time, with the log's
repository, path, commit and sha256.

    python tools/extract_reference_runs.py --mobilemamba DIR --mambavision DIR [--ids ID,...]
        [--out DIR]

DIR is a git checkout or a bare snapshot of github.com/lewandofskee/MobileMamba or
github.com/NVlabs/MambaVision (its HEAD is read; nothing is written there). Which logs: the
catalog in ``ablations/reference_catalog.py``; the parsing: ``runs/logs/log_formats.py``; the extraction:
``runs/logs/official_runs.py``. Bad input: a one-line error, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations.reference_catalog import (  # noqa: E402
    DATA_DIR,
    MAMBAVISION_REPO,
    MOBILEMAMBA_REPO,
    SOURCES,
)
from runs.logs.log_formats import LogFormatError  # noqa: E402
from runs.logs.official_runs import SourceError, extract_all, git_dir  # noqa: E402
from runs.options import split_csv  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='extract_reference_runs.py',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--mobilemamba', help=f'checkout or snapshot of {MOBILEMAMBA_REPO}')
    parser.add_argument('--mambavision', help=f'checkout or snapshot of {MAMBAVISION_REPO}')
    parser.add_argument('--ids', help='only these references (default: every one whose '
                                      'repository is given): ' + ', '.join(SOURCES))
    parser.add_argument('--out', default=str(DATA_DIR), help='output folder (default: %(default)s)')
    args = parser.parse_args(argv)
    try:
        ids = split_csv(args.ids) or None
        unknown = sorted(set(ids or ()) - set(SOURCES))
        if unknown:
            raise SourceError(f'unknown reference id(s) {", ".join(unknown)}; known: '
                              + ', '.join(SOURCES))
        repos = {name: git_dir(Path(path)) for name, path in
                 ((MOBILEMAMBA_REPO, args.mobilemamba), (MAMBAVISION_REPO, args.mambavision))
                 if path}
        if not repos:
            raise SourceError('give --mobilemamba and/or --mambavision (a git checkout or '
                              'snapshot of the official repository)')
        done = extract_all(repos, ids, Path(args.out))
    except (SourceError, LogFormatError, OSError) as err:
        print(f'extract_reference_runs.py: error: {" ".join(str(err).split())}', file=sys.stderr)
        return 2
    for ref_id, path, note in done:
        print(f'{ref_id}: {note}' + (f' -> {path}' if path else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
