"""Write the committed excerpts of the official logs (``tests/fixtures/reference_excerpts/``), so
that CI checks every extraction in ``ablations/reference_runs/`` against lines of its original
without the official repositories at hand (``tests/test_reference_excerpts.py``).

    python tools/make_reference_excerpts.py --mobilemamba DIR --mambavision DIR [--out DIR]
        [--check]

DIR is a git checkout or a bare snapshot of github.com/lewandofskee/MobileMamba or
github.com/NVlabs/MambaVision. Each log of the catalog (``ablations/reference_catalog.py``) is
read at the commit its committed extraction records, and must have the sha256 that extraction
records. Its excerpt ``<id>.excerpt.<txt|log>`` holds verbatim whole lines of the original, in
their order: the lines the parser (``runs/logs/log_formats.py``) reads the run's setup from, the
first, a middle and the last training record, and the first, a middle and the last evaluation
with the training line before each (the parser counts an evaluation's iterations from it).
``MANIFEST.json`` records per id the original's repository, path, commit, sha256, size and line
count, the 1-based numbers of the lines kept, and the excerpt's file name and sha256.

Before anything is written, each excerpt is checked: its lines are a subsequence of the
original's lines, and parsed, it gives the same training records, evaluations and setup as the
original does (all but the medians over every logged line). ``--check`` writes nothing and tells
whether the committed files are the ones this would write (exit 1 if not). Bad input (a missing
repository, a log not found, an original that is not the extracted one, an excerpt that does not
parse as its original): a one-line error, exit 2, and nothing written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

if str(Path(__file__).resolve().parent.parent) not in sys.path:  # run by path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablations.reference_catalog import (  # noqa: E402
    MAMBAVISION_REPO,
    MOBILEMAMBA_REPO,
    SOURCES,
    load_reference,
)
from runs.logs.log_formats import LogFormatError, RunLog, parse_text  # noqa: E402
from runs.logs.official_runs import SourceError, git_dir, repo_args  # noqa: E402

TOOL = 'make_reference_excerpts.py'
OUT = Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'reference_excerpts'
MANIFEST = 'MANIFEST.json'
# Medians over every logged line: no excerpt can give them back.
UNCHECKED_META = ('s_per_iter', 'memory_mb')

_MM_STAMP = re.compile(r'^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} - mmengine - \w+ - ?(.*)$')
_MOBILE_STAMP = re.compile(r'^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d+ - (.*)$')
_MM_TRAIN = re.compile(r'^(Epoch|Iter)\(train\)')
_CONFIG_CHILD = re.compile(r'^    (batch_size|max_epochs|max_iters)=')
# The trainer's config table rows the parser reads (the first of each after the first stamp).
_MOBILE_CFG_KEYS = ('epoch_full', 'data.train_size', 'trainer.data.batch_size',
                    'trainer.data.batch_size_per_gpu', 'world_size')


class ExcerptError(RuntimeError):
    """An excerpt that would not stand for its original."""


# --- reading the originals ------------------------------------------------------------------------
def read_at(repo: Path, commit: str, path: str) -> bytes:
    """The bytes of ``path`` at ``commit`` (the commit the committed extraction records)."""
    done = subprocess.run(['git', *repo_args(repo), 'cat-file', 'blob', f'{commit}:{path}'],
                          capture_output=True)
    if done.returncode:
        raise SourceError(f'{repo}: {path} at {commit}: '
                          + ' '.join(done.stderr.decode(errors='replace').split()))
    return done.stdout


def text_lines(data: bytes, where: str) -> list[str]:
    """The lines of a log as the parser numbers them (it splits with ``str.splitlines``); the
    logs break lines with ``\\n`` only, which is checked, so the numbers are the file's."""
    text = data.decode('utf-8', errors='replace')
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    if lines != text.splitlines():
        raise ExcerptError(f'{where}: line breaks other than \\n; the parser\'s line numbers '
                           'would not be the file\'s')
    return lines


# --- which lines --------------------------------------------------------------------------------
def _bodies(lines: list[str], stamp: re.Pattern) -> dict[int, str]:
    """1-based line number -> the text after the time stamp, for the stamped lines."""
    found = {}
    for number, line in enumerate(lines, start=1):
        match = stamp.match(line)
        if match:
            found[number] = match.group(1)
    return found


def _config_lines(lines: list[str], name: str) -> list[int]:
    """Of the first top-level ``name = ...`` of mmengine's config dump: its first line, its
    direct children the parser reads (batch size, loop length) and its closing line."""
    for i, line in enumerate(lines):
        if not line.startswith(f'{name} = '):
            continue
        kept = [i + 1]
        for j in range(i + 1, len(lines)):
            more = lines[j]
            if more and not more[0].isspace() and not more.startswith(')'):
                break
            if _CONFIG_CHILD.match(more) or more.startswith(')'):
                kept.append(j + 1)
            if more.startswith(')'):
                break
        return kept
    return []


def mmengine_setup_lines(lines: list[str]) -> set[int]:
    """The lines an mmengine log's setup is read from: the environment header's GPUs, the config
    dump's batch, loop and dataset, each session's start ("Config:") and first and last stamped
    line (its wall time), and the resume lines."""
    bodies = _bodies(lines, _MM_STAMP)
    stamped = sorted(bodies)
    kept = {stamped[0], stamped[-1]} if stamped else set()
    for k, number in enumerate(stamped):
        body = bodies[number]
        if body.startswith('Config:'):
            kept.add(number)
            if k:
                kept.add(stamped[k - 1])
        if 'resumed epoch: ' in body:
            kept.add(number)
    model = None
    for number, line in enumerate(lines, start=1):
        if number in bodies:
            continue
        if re.match(r'^\s*GPU number:', line):
            kept.add(number)
        elif model is None and re.match(r'^\s*GPU [\d,]+:', line):
            model = number
        elif line.startswith('dataset_type = '):
            kept.add(number)
    if model:
        kept.add(model)
    for name in ('train_dataloader', 'val_dataloader', 'train_cfg'):
        kept.update(_config_lines(lines, name))
    return kept


def mobilemamba_setup_lines(lines: list[str]) -> set[int]:
    """The lines a MobileMamba trainer log's setup is read from: the first and last stamped line
    (its wall time), the config table's header and the rows the parser reads, and the last
    "Starting training" and "Total time" lines."""
    bodies = _bodies(lines, _MOBILE_STAMP)
    stamped = sorted(bodies)
    if not stamped:
        return set()
    kept = {stamped[0], stamped[-1]}
    header = next((n for n in stamped if bodies[n].startswith('==> ********** cfg')), None)
    if header:
        kept.add(header)
    for key in _MOBILE_CFG_KEYS:
        row = re.compile(rf'^{re.escape(key)}\s+: ')
        kept.update(next(([n] for n, line in enumerate(lines, start=1)
                          if n > stamped[0] and row.match(line)), []))
    # The parser reads the last "Total time" printed as h:mm:ss; a run over a day ends with one
    # printed as "1 day, h:mm:ss", kept as well so the excerpt holds what the trainer printed.
    for start in (r'==> Starting training with ', r'==> Total time: ', r'==> Total time: \d+:'):
        kept.update([n for n in stamped if re.match(start, bodies[n])][-1:])
    return kept


def _thirds(items: list) -> list:
    """The first, a middle and the last item (fewer when there are fewer)."""
    return [items[i] for i in sorted({0, len(items) // 2, len(items) - 1})] if items else []


def record_lines(lines: list[str], log: RunLog) -> set[int]:
    """The lines of the first, middle and last training record and evaluation, the training line
    before each evaluation (its iterations), the raw model's result an EMA result goes with
    (MobileMamba), and the training line of mmengine's peak memory."""
    stamp = _MM_STAMP if log.format == 'mmengine' else _MOBILE_STAMP
    bodies = _bodies(lines, stamp)

    def is_train(body: str) -> bool:
        return bool(_MM_TRAIN.match(body)) if log.format == 'mmengine' else \
            body.startswith('Train: ')

    kept = {p.line for p in _thirds(log.train)}
    memory = [p for p in log.train if p.memory is not None]
    if memory:
        kept.add(max(memory, key=lambda p: p.memory).line)
    for evaluation in _thirds(log.evaluations):
        kept.add(evaluation.line)
        for number in range(evaluation.line - 1, 0, -1):
            body = bodies.get(number)
            if body is None:
                continue
            if is_train(body):
                kept.add(number)
                break
            if log.format == 'mobilemamba' and body.startswith('net: '):
                kept.add(number)
    return kept


# --- one excerpt ----------------------------------------------------------------------------------
def _meta(log: RunLog) -> dict:
    return {k: v for k, v in log.meta.items() if v is not None and k not in UNCHECKED_META}


def check_excerpt(ref_id: str, excerpt: list[str], original: list[str], log: RunLog) -> None:
    """ExcerptError unless the excerpt's lines are a subsequence of the original's and, parsed,
    give what the original gives at every record they hold, and its setup."""
    it = iter(original)
    if not all(any(line == other for other in it) for line in excerpt):
        raise ExcerptError(f'{ref_id}: the excerpt is not a subsequence of the original\'s lines')
    part = parse_text('\n'.join(excerpt) + '\n', ref_id)
    train = {p.iter: (p.lr, p.loss, p.memory) for p in log.train}
    for p in part.train:
        if train.get(p.iter) != (p.lr, p.loss, p.memory):
            raise ExcerptError(f'{ref_id}: the excerpt\'s training record at iteration {p.iter} '
                               'is not the original\'s')
    evals = {e.step: (e.unit, e.iter, e.metrics) for e in log.evaluations}
    for e in part.evaluations:
        if evals.get(e.step) != (e.unit, e.iter, e.metrics):
            raise ExcerptError(f'{ref_id}: the excerpt\'s evaluation at step {e.step} is not the '
                               'original\'s')
    if _meta(part) != _meta(log):
        differ = sorted(k for k in {**_meta(part), **_meta(log)}
                        if _meta(part).get(k) != _meta(log).get(k))
        raise ExcerptError(f'{ref_id}: the excerpt gives another setup ({", ".join(differ)})')
    for name, whole, got in (('training records', log.train, part.train),
                             ('evaluations', log.evaluations, part.evaluations)):
        wanted = [getattr(x, 'iter' if name[0] == 't' else 'step') for x in _thirds(whole)]
        have = {getattr(x, 'iter' if name[0] == 't' else 'step') for x in got}
        if not set(wanted) <= have:
            raise ExcerptError(f'{ref_id}: the excerpt lacks the first, middle or last of its '
                               f'{name}')


def make_excerpt(ref_id: str, repos: dict[str, Path]) -> tuple[str, bytes, dict]:
    """(file name, excerpt bytes, manifest entry) of one catalogued log."""
    source = SOURCES[ref_id]
    recorded = load_reference(ref_id).source
    data = read_at(repos[source.repository], recorded['commit'], source.path)
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != recorded['sha256']:
        raise ExcerptError(f'{ref_id}: {source.path} at {recorded["commit"]} has sha256 {sha256}, '
                           f'the extraction records {recorded["sha256"]}; re-extract it first')
    lines = text_lines(data, f'{source.repository}:{source.path}')
    log = parse_text(data.decode('utf-8', errors='replace'), source.path)
    if log.format not in ('mmengine', 'mobilemamba'):
        raise ExcerptError(f'{ref_id}: a {log.format} log; only text logs are excerpted')
    setup = mmengine_setup_lines(lines) if log.format == 'mmengine' else \
        mobilemamba_setup_lines(lines)
    kept = sorted(setup | record_lines(lines, log))
    excerpt = [lines[n - 1] for n in kept]
    check_excerpt(ref_id, excerpt, lines, log)
    body = ('\n'.join(excerpt) + '\n').encode('utf-8')
    name = f'{ref_id}.excerpt{Path(source.path).suffix}'
    entry = dict(repository=source.repository, path=source.path, commit=recorded['commit'],
                 sha256=sha256, bytes=len(data), lines=len(lines), kept=kept, excerpt=name,
                 excerpt_sha256=hashlib.sha256(body).hexdigest())
    return name, body, entry


def make_all(repos: dict[str, Path]) -> dict[str, bytes]:
    """Every excerpt and the manifest, as file name -> bytes (nothing written)."""
    files, manifest = {}, {}
    for ref_id in SOURCES:
        name, body, entry = make_excerpt(ref_id, repos)
        files[name] = body
        manifest[ref_id] = entry
    files[MANIFEST] = (json.dumps(manifest, indent=1, sort_keys=True) + '\n').encode('utf-8')
    return files


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=TOOL, description=__doc__.split('\n\n')[0])
    parser.add_argument('--mobilemamba', help=f'checkout or snapshot of {MOBILEMAMBA_REPO}')
    parser.add_argument('--mambavision', help=f'checkout or snapshot of {MAMBAVISION_REPO}')
    parser.add_argument('--out', default=str(OUT), help='output folder (default: %(default)s)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 unless the files in --out are these')
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        missing = [flag for flag in ('--mobilemamba', '--mambavision')
                   if not getattr(args, flag[2:])]
        if missing:
            raise SourceError(f'give {" and ".join(missing)} (a git checkout or snapshot of the '
                              'official repository): every catalogued log is excerpted')
        repos = {MOBILEMAMBA_REPO: git_dir(Path(args.mobilemamba)),
                 MAMBAVISION_REPO: git_dir(Path(args.mambavision))}
        files = make_all(repos)
        if args.check:
            stale = [name for name, body in files.items()
                     if not (out / name).is_file() or (out / name).read_bytes() != body]
            for name in stale:
                print(f'{TOOL}: {out / name} is not what the tool writes now')
            print(f'{len(files) - len(stale)} of {len(files)} file(s) as the tool writes them')
            return 1 if stale else 0
        out.mkdir(parents=True, exist_ok=True)
        for name, body in files.items():  # the manifest last
            (out / name).write_bytes(body)
    except (SourceError, ExcerptError, LogFormatError, OSError) as err:
        print(f'{TOOL}: error: {" ".join(str(err).split())}', file=sys.stderr)
        return 2
    total = sum(len(body) for body in files.values())
    print(f'{len(files) - 1} excerpts and {MANIFEST}, {total:,} bytes -> {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
