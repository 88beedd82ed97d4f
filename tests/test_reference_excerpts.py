"""Every extraction of an official log (``ablations/reference_runs/``) against committed lines of
its original, so that CI checks all of them, not only where the official repositories are at hand
(issue 32).

``tests/fixtures/reference_excerpts/<id>.excerpt.*`` holds verbatim whole lines of each original
at the commit its extraction records, in their order: the lines the parser reads the run's setup
from, and the first, a middle and the last training record and evaluation. ``MANIFEST.json``
says per id which original (repository, path, commit, sha256) and which of its lines were kept,
and the sha256 of the excerpt written. Both come from ``tools/make_reference_excerpts.py``, which
checks, where the originals are, that each excerpt is a subsequence of its original's lines and
parses as its original does; here, the sha256 ties each committed excerpt to that tool's output.

What an excerpt must give is read from the committed extraction (``load_reference``) and the
manifest, never from the parser run again on the excerpt's own lines.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from ablations.reference_catalog import SOURCES, load_reference
from runs.logs.log_formats import RunLog, read_log

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / 'tests' / 'fixtures' / 'reference_excerpts'
IDS = list(SOURCES)
# Medians over every logged line of the original, which no excerpt can give back.
MEDIANS = ('s_per_iter', 'memory_mb')
LOSS_DIGITS = 4  # the extraction keeps the loss to this many decimals (official_runs.extract)
REGENERATE = 'regenerate with tools/make_reference_excerpts.py'


def _manifest() -> dict:
    return json.loads((FIXTURES / 'MANIFEST.json').read_text(encoding='utf-8'))


def _entry(ref_id: str) -> dict:
    manifest = _manifest()
    assert ref_id in manifest, f'MANIFEST.json has no excerpt of {ref_id}: {REGENERATE}'
    return manifest[ref_id]


def _excerpt(ref_id: str) -> RunLog:
    return read_log(FIXTURES / _entry(ref_id)['excerpt'])


def _thirds(items: list) -> list:
    """The first, the middle and the last item: the records every excerpt must hold."""
    return [items[i] for i in sorted({0, len(items) // 2, len(items) - 1})] if items else []


def test_every_catalogued_log_has_an_excerpt():
    manifest = _manifest()
    assert sorted(manifest) == sorted(IDS), (
        f'missing: {sorted(set(IDS) - set(manifest))}, not catalogued: '
        f'{sorted(set(manifest) - set(IDS))}; {REGENERATE}')
    named = {entry['excerpt'] for entry in manifest.values()}
    present = {p.name for p in FIXTURES.glob('*.excerpt.*')}
    assert named == present, f'excerpts not in the manifest: {sorted(present - named)}; ' \
                             f'in the manifest but absent: {sorted(named - present)}'
    sizes = {p.name: p.stat().st_size for p in FIXTURES.iterdir()}
    assert sum(sizes.values()) < 250_000
    assert max(sizes.values()) < 16_000, max(sizes, key=sizes.get)


@pytest.mark.parametrize('ref_id', IDS)
def test_excerpt_is_the_one_the_tool_wrote(ref_id):
    entry = _entry(ref_id)
    assert entry['excerpt'] == f'{ref_id}.excerpt{Path(SOURCES[ref_id].path).suffix}'
    data = (FIXTURES / entry['excerpt']).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry['excerpt_sha256'], \
        f'{entry["excerpt"]} is not the excerpt the tool wrote: {REGENERATE}'
    kept = entry['kept']
    assert kept == sorted(set(kept)) and 1 <= kept[0] and kept[-1] <= entry['lines']
    assert len(data.decode('utf-8').splitlines()) == len(kept)


@pytest.mark.parametrize('ref_id', IDS)
def test_manifest_names_the_extracted_original(ref_id):
    """The excerpt was cut from the very bytes the extraction was made from."""
    entry, source = _entry(ref_id), load_reference(ref_id).source
    for key in ('repository', 'path', 'commit', 'sha256', 'bytes'):
        assert entry[key] == source[key], (key, entry[key], source[key])
    assert entry['path'] == SOURCES[ref_id].path


@pytest.mark.parametrize('ref_id', IDS)
def test_excerpt_records_equal_the_extraction(ref_id):
    """Each training record and evaluation the excerpt holds is the extraction's at the same
    iteration or step: the lr and metrics exactly (both are the printed numbers), the loss to the
    decimals the extraction keeps."""
    ref, log = load_reference(ref_id), _excerpt(ref_id)
    train = {i: (lr, loss) for i, lr, loss in
             zip(ref.train['iter'], ref.train['lr'], ref.train['loss'])}
    for point in log.train:
        assert point.iter in train, f'iteration {point.iter} is not in the extraction'
        lr, loss = train[point.iter]
        assert point.lr == lr, (point.iter, point.lr, lr)
        ours = None if point.loss is None else round(point.loss, LOSS_DIGITS)
        assert ours == loss, (point.iter, point.loss, loss)
    evaluations = {e['step']: e for e in ref.evaluations}
    for evaluation in log.evaluations:
        assert evaluation.step in evaluations, f'step {evaluation.step} is not in the extraction'
        expected = evaluations[evaluation.step]
        assert (evaluation.unit, evaluation.iter) == (expected['unit'], expected['iter'])
        assert evaluation.metrics == expected['metrics'], f'metrics at step {evaluation.step}'


@pytest.mark.parametrize('ref_id', IDS)
def test_excerpt_holds_the_first_middle_and_last_records(ref_id):
    ref, log = load_reference(ref_id), _excerpt(ref_id)
    iters = {p.iter for p in log.train}
    for iteration in _thirds(ref.train['iter']):
        assert iteration in iters, f'training record at iteration {iteration} not in the excerpt'
    steps = {e.step for e in log.evaluations}
    for step in _thirds([e['step'] for e in ref.evaluations]):
        assert step in steps, f'evaluation at step {step} not in the excerpt'
    assert ref.evaluations and (ref.kind == 'test' or ref.train['iter'])


@pytest.mark.parametrize('ref_id', IDS)
def test_excerpt_gives_the_extraction_setup(ref_id):
    """The lines the setup is read from are kept: GPUs and their source, batch, schedule, resumes,
    sessions, wall and printed time, lr format, peak memory; all but the medians."""
    ref, log = load_reference(ref_id), _excerpt(ref_id)
    ours = {k: v for k, v in log.meta.items() if v is not None and k not in MEDIANS}
    expected = {k: v for k, v in ref.meta.items() if k not in MEDIANS}
    differ = {k: (ours.get(k), expected.get(k)) for k in sorted(ours.keys() | expected.keys())
              if ours.get(k) != expected.get(k)}
    assert not differ, f'(excerpt, extraction) differ: {differ}'


def test_tool_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys):
    """Without both repositories, or with one that lacks a log, the excerpts are not made."""
    from tools.make_reference_excerpts import main
    out = tmp_path / 'out'
    other = tmp_path / 'other'  # a git repository without the official logs
    other.mkdir()
    for args in (['init', '-q'], ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q',
                                  '--allow-empty', '-m', 'empty']):
        subprocess.run(['git', '-C', str(other), *args], check=True)
    assert main(['--mobilemamba', str(other), '--out', str(out)]) == 2
    assert main(['--mobilemamba', str(tmp_path), '--mambavision', str(other),
                 '--out', str(out)]) == 2
    assert main(['--mobilemamba', str(other), '--mambavision', str(other),
                 '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith('make_reference_excerpts.py: error: ')
                                 for line in err), err
    assert '--mambavision' in err[0] and 'not a git repository' in err[1]
    assert SOURCES[IDS[0]].path in err[2]
    assert not out.exists()
