"""Tables of your own (issue 31): a Python file outside the repository that defines ``TABLE``,
run, followed and reported like a paper table, its rows checked before anything is queued.

The example (``examples/no_scan_ablation.py``) is always used from a copy in ``tmp_path``, never
from the repository. Expected values come from the paper (Table 4's 82.3 for conv2-concat), from
the file's bytes (its sha256, computed here) and from the backbones' documented choices.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ablations
from ablations import NOT_PUBLISHED, AblationTable, Claim, Row, get_table
from ablations import table_files
from ablations.compose import build_row_config
from runs.rundir import RunKey
from runs.rundir.identity import config_hash, stale_reason

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / 'examples' / 'no_scan_ablation.py'
TABLE4_CONV2_CONCAT_TOP1 = 82.3  # MambaVision v2, Table 4, "conv1 - conv2 - concat"


@pytest.fixture(autouse=True)
def forget_table_files():
    """Each test loads its own copies: what they registered (tables, modules, mixers) goes after."""
    before = set(table_files._LOADED)
    yield
    for name in set(table_files._LOADED) - before:
        table_files._forget(table_files._LOADED[name].module)


def copy_example(folder: Path, name: str = 'my_study.py', typo: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = EXAMPLE.read_text()
    if typo:
        text = text.replace("dict(mixer_cfg=dict(type='NoScanMixer'))",
                            "dict(mixer_cfg=dict(type='NoScanMixr'))")
        assert 'NoScanMixr' in text
    path = folder / name
    path.write_text(text)
    return path


def test_the_vocabulary_of_a_table_file_is_stable():
    """What a table file may use: get_table, and AblationTable, Row, Claim as frozen dataclasses
    that dataclasses.replace extends (the names and fields docs/own_ablation.md shows)."""
    for cls in (AblationTable, Row, Claim):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
    assert {'name', 'slug', 'overrides', 'published', 'notes', 'in_paper', 'task_overrides'} <= \
        {f.name for f in dataclasses.fields(Row)}
    assert [f.name for f in dataclasses.fields(Claim)] == ['better', 'worse', 'text', 'metrics']
    table4 = get_table('table4')
    mine = Row('mine', 'mine', dict(hybrid_pattern='random'))
    extended = dataclasses.replace(
        table4, name='mine', rows=table4.rows + (mine,),
        claims=table4.claims + (Claim('conv2-concat', 'mine', 'concat > mine', ('top1',)),))
    assert extended.row('mine').published == {} and extended.rows[:-1] == table4.rows
    with pytest.raises(dataclasses.FrozenInstanceError):
        extended.name = 'other'


def test_a_file_extends_table4_with_a_row_of_its_own(tmp_path):
    path = copy_example(tmp_path)
    table = get_table(str(path))
    assert table.name == 'table4_no_scan'
    paper = table.row('conv2-concat')
    assert paper.in_paper and paper.published['top1'] == TABLE4_CONV2_CONCAT_TOP1
    assert paper == get_table('table4').row('conv2-concat')  # published numbers and notes kept
    assert table.caveats == get_table('table4').caveats
    own = table.row('no-scan')
    assert not own.in_paper
    assert dict(own.published) == {m: NOT_PUBLISHED for m in table.metrics}
    assert 'Your own row (my_study.py)' in own.notes[-1]
    assert table.claims[-1] == Claim('conv2-concat', 'no-scan',
                                     'the scan > no scan (conv branches only)')
    # Found again by path (unchanged: the same table) and, in this process, by name.
    assert get_table(str(path)) is table and get_table('table4_no_scan') is table
    assert table_files.table_reference(table) == str(path)
    assert table_files.table_reference('table4') == 'table4'


BAD_FILES = {
    'missing': (None, 'does not exist'),
    'syntax': ('TABLE = (', 'does not import: SyntaxError'),
    'raises': ('raise RuntimeError("no GPU here")', 'does not import: RuntimeError: no GPU here'),
    'no_table': ('X = 1', 'defines no TABLE'),
    'not_a_table': ('TABLE = {"name": "x"}', 'its TABLE is a dict, not an AblationTable'),
    'paper_name': ('import dataclasses\nfrom ablations import get_table\n'
                   'TABLE = dataclasses.replace(get_table("table4"), title="mine")',
                   "TABLE.name 'table4' is a paper table's name"),
    'changed_paper_row': (
        'import dataclasses\nfrom ablations import get_table\nt = get_table("table4")\n'
        'TABLE = dataclasses.replace(t, name="mine", claims=(), rows=(dataclasses.replace('
        't.row("conv2-concat"), published=dict(top1=85.0)),))',
        "row 'conv2-concat' is table4's row of that slug with published changed"),
    'own_published': (
        'import dataclasses\nfrom ablations import Row, get_table\nt = get_table("table4")\n'
        'TABLE = dataclasses.replace(t, name="mine", claims=(),\n'
        '                            rows=(Row("x", "x", {}, dict(top1=90.0)),))',
        "row 'x' is your own: it has no published numbers, got {'top1': 90.0}"),
}


@pytest.mark.parametrize('case', BAD_FILES)
def test_a_bad_table_file_is_refused_in_one_line(tmp_path, case):
    body, message = BAD_FILES[case]
    path = tmp_path / f'bad_{case}.py'
    if body is not None:
        path.write_text(body + '\n')
    with pytest.raises(ValueError) as err:
        get_table(str(path))
    text = str(err.value)
    assert message in text and str(path) in text and '\n' not in text, text
    assert f'bad_{case}' not in sys.modules


@pytest.mark.parametrize('name, message', [
    ('my-study.py', "its name must be letters, digits and _"),
    ('backbones.py', "its module name 'backbones' is taken"),
])
def test_a_table_file_is_named_as_a_module_of_its_own(tmp_path, name, message):
    path = copy_example(tmp_path, name)
    with pytest.raises(ValueError, match=re.escape(message)):
        get_table(str(path))


def test_base_configs_are_found_beside_the_file(tmp_path):
    (tmp_path / 'my_cls.py').write_text(
        f"_base_ = [{str(REPO / 'cls_configs/mambavision/mambavision-t_in1k.py')!r}]\n"
        "beside_the_file = True\n")
    path = copy_example(tmp_path)
    path.write_text(path.read_text().replace(
        "    title=_TABLE4.title", "    base_configs=dict(_TABLE4.base_configs, cls='my_cls.py'),"
        "\n    title=_TABLE4.title"))
    table = get_table(str(path))
    assert table.base_configs['cls'] == str(tmp_path / 'my_cls.py')
    assert table.base_configs['det'] == get_table('table4').base_configs['det']  # the repo's
    assert build_row_config(table, 'no-scan', 'cls').beside_the_file is True


def test_a_run_of_a_file_table_imports_the_file_and_goes_stale_when_it_changes(tmp_path):
    path = copy_example(tmp_path)
    table = get_table(str(path))
    cfg = build_row_config(table, 'no-scan', 'cls')
    assert cfg.custom_imports.imports[-1] == 'my_study'
    assert not cfg.custom_imports.allow_failed_imports
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert cfg.ablation.table_file == dict(module='my_study', sha256=sha256)
    assert table_files.table_file_record(table) == dict(path=str(path), sha256=sha256)
    # The config as written for the run: the file's folder on sys.path before custom_imports.
    table_files.dump_config(cfg, tmp_path / 'config.py')
    header = (tmp_path / 'config.py').read_text().split('\n\n')[0]
    assert f'sys.path.insert(0, {str(tmp_path)!r})' in header

    key = RunKey.train(table.name, 'smoke', 'no-scan', 'cls', 0)
    record = dict(config_hash=config_hash(cfg), gpus=1, table_file=dict(path=str(path),
                                                                        sha256=sha256))
    assert stale_reason(key, tmp_path, record) is None
    path.write_text(path.read_text() + '# an edit that changes nothing but the source\n')
    assert get_table(str(path)) is not table  # loaded again: the file changed
    assert stale_reason(key, tmp_path, record) == \
        f'its table file {path} changed since it ran'


@pytest.fixture
def contract_breaker():
    """A registered mixer that halves the width: it builds, but breaks the mixer contract."""
    import torch.nn as nn
    from mmengine.registry import MODELS

    class HalfWidthMixer(nn.Module):
        def __init__(self, d_model: int):
            super().__init__()
            self.proj = nn.Linear(d_model, d_model // 2)

        def forward(self, x):
            return self.proj(x)

    MODELS.register_module(module=HalfWidthMixer)
    yield 'HalfWidthMixer'
    MODELS.module_dict.pop('HalfWidthMixer')


def _checked(table_name: str, overrides: dict, task: str = 'cls') -> str:
    from ablations.row_check import RowError, check_rows
    paper = get_table(table_name)
    table = dataclasses.replace(paper, name='row_check_test', claims=(),
                                rows=(Row('bad row', 'bad-row', overrides),))
    with pytest.raises(RowError) as err:
        check_rows(table, [('bad-row', task)])
    return str(err.value)


@pytest.mark.parametrize('table, overrides, message', [
    ('table4', dict(mixer_cfg=dict(fusoin='gate')),
     "unknown mixer_cfg keys ['fusoin']; valid keys: ['conv1', 'conv2', 'fusion'"),
    ('table4', dict(mixer_cfg=dict(fusion='concatt')),
     "fusion must be one of ('concat', 'gate', 'add'), got 'concatt'"),
    ('table4', dict(hybrid_patern='random'),
     "MambaVision has no key 'hybrid_patern'; valid keys: arch, in_channels, mixer_cfg, "
     "hybrid_pattern,"),
    ('table4', dict(mixer_cfg=dict(type='MambaVisionMixr')),
     "mixer_cfg type 'MambaVisionMixr' is not a registered mixer; registered: "),
    ('mobilemamba_mrffi', dict(mrffi_cfg=dict(wavelt=False)),
     "mrffi_cfg keys ['wavelt'] are not valid; valid keys: ['wavelet',"),
])
def test_a_paper_table_row_is_checked_by_its_model(table, overrides, message):
    text = _checked(table, overrides)
    assert text.startswith("row_check_test: row 'bad-row' (cls): ") and message in text, text
    assert '\n' not in text


def test_a_mixer_of_your_own_is_checked_by_its_keys_and_its_contract(tmp_path,
                                                                     contract_breaker):
    get_table(str(copy_example(tmp_path)))  # registers NoScanMixer
    text = _checked('table4', dict(mixer_cfg=dict(type='NoScanMixer', kernel_size=5)))
    assert text.endswith("NoScanMixer has no key 'kernel_size'; valid keys: d_conv"), text
    text = _checked('table4', dict(mixer_cfg=dict(type=contract_breaker)))
    assert re.search(r"HalfWidthMixer maps \(\d+, \d+, 64\) torch.float32 to \(\d+, \d+, 32\) "
                     r"torch.float32; a mixer keeps its input's shape and dtype", text), text


def test_a_mistyped_row_is_refused_before_anything_is_queued(tmp_path, capsys):
    """The dry run and the table command of a file table with a typo in its row's mixer_cfg:
    one line naming the file, the row, the bad value and the choices; exit 2; nothing written."""
    from tools.run_table import main
    path = copy_example(tmp_path / 'study', typo=True)
    work = tmp_path / 'work'
    for extra in (['--dry-run'], []):
        assert main([str(path), '--rows', 'conv2-concat,no-scan', '--tasks', 'cls',
                     '--work-dir', str(work), '--no-report', *extra]) == 2
        out, err = capsys.readouterr()
        assert out == '' and err.count('\n') == 1, (out, err)
        assert err.startswith(f"run_all.sh: error: {path}: row 'no-scan' (cls): mixer_cfg type "
                              "'NoScanMixr' is not a registered mixer; registered: "), err
        # (other tests of this process may have registered mixers of their own)
        assert {'MambaVisionMixer', 'NoScanMixer'} <= set(err.split('registered: ')[1].strip()
                                                         .split(', ')), err
        assert not work.exists()


def test_a_mistyped_paper_row_is_refused_by_the_dry_run(tmp_path, capsys):
    """Before: the dry run built the config, the footprint turned the model's error into
    'checkpoint footprint unknown', and the row would have been queued."""
    from tools.run_table import main
    table4 = get_table('table4')
    ablations.TABLES['typo_test'] = dataclasses.replace(
        table4, name='typo_test', claims=(),
        rows=(table4.row('conv2-concat'), Row('typo', 'typo', dict(mixer_cfg=dict(
            fusion='concatt')))))
    try:
        assert main(['typo_test', '--tasks', 'cls', '--dry-run',
                     '--work-dir', str(tmp_path / 'work')]) == 2
    finally:
        del ablations.TABLES['typo_test']
    out, err = capsys.readouterr()
    assert out == '' and err == ("run_all.sh: error: typo_test: row 'typo' (cls): fusion must be "
                                 "one of ('concat', 'gate', 'add'), got 'concatt'\n"), (out, err)


# --- the example end to end, from outside the repository ----------------------------------------

def _run_all(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / 'run_all.sh'), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_example_runs_in_smoke_from_a_copy_outside_the_repository(tmp_path):
    """./run_all.sh my_study.py --rows conv2-concat,no-scan --tasks cls, from the copy's folder:
    a typo is refused by the dry run; the runs train; the report shows the paper's 82.3 beside
    conv2-concat, n/p beside the row of your own and the claim checked; the generated config
    trains with tools/train.py alone; status finds the table again and an edit makes it stale."""
    study, work, reports = tmp_path / 'study', tmp_path / 'work', tmp_path / 'reports'
    typo = copy_example(study, 'typo_study.py', typo=True)
    selection = ['--rows', 'conv2-concat,no-scan', '--tasks', 'cls', '--work-dir', work]
    done = _run_all(typo.name, *selection, '--dry-run', cwd=study)
    assert done.returncode == 2 and done.stdout == '', done
    assert done.stderr.splitlines() == [
        f"run_all.sh: error: {typo}: row 'no-scan' (cls): mixer_cfg type 'NoScanMixr' is not a "
        "registered mixer; registered: MambaVisionMixer, NoScanMixer"], done.stderr
    assert not work.exists()

    path = copy_example(study)
    done = _run_all(path.name, *selection, '--report-dir', reports, cwd=study)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    md = (reports / 'table4_no_scan' / 'table4_no_scan.md').read_text()
    assert re.search(r'^\| conv1 - conv2 - concat \[\d+\] \| \d+\.\d n=1 \(82\.3, [+-]?\d+\.\d\)',
                     md, re.M), md
    assert re.search(r'^\| conv1 - conv2 - concat, no scan \[\d+\] \| \d+\.\d n=1 \(n/p\)',
                     md, re.M), md
    assert 'Your own row (my_study.py), not in MambaVision' in md
    assert f'- Table file: {path} (sha256 ' in md
    claim = re.search(r'^\| the scan > no scan \(conv branches only\) \| ImageNet top-1 \(%\) \| '
                      r'n/p \| ([+-]\d+\.\d\d) \[', md, re.M)
    assert claim, md
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    run_dir = RunKey.train('table4_no_scan', 'smoke', 'no-scan', 'cls', 0).dir(work)
    record = json.loads((run_dir / 'run.json').read_text())
    assert record['table_file'] == dict(path=str(path), sha256=sha256)

    # The generated config, kept as written through the run, trains alone: no runner, no
    # PYTHONPATH, started from elsewhere.
    config = run_dir / 'config.py'
    assert config.read_text().startswith('# The module of a table file, in custom_imports')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    alone = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), str(config),
                            '--work-dir', str(tmp_path / 'alone'),
                            '--cfg-options', 'train_cfg.max_epochs=1'],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    (scalars,) = (tmp_path / 'alone').glob('*/vis_data/scalars.json')
    assert 'accuracy/top1' in scalars.read_text()

    status = ['status', path.name, '--work-dir', work, '--rows', 'conv2-concat,no-scan',
              '--tasks', 'cls']
    done = _run_all(*status, cwd=study)
    assert done.returncode == 0 and 'table4_no_scan: 2 run(s): 2 finished' in done.stdout, done
    path.write_text(path.read_text() + '# edited\n')
    done = _run_all(*status, cwd=study)
    assert done.returncode == 1, done
    assert re.search(rf'^stale .*no-scan/cls/seed0  \(its table file {re.escape(str(path))} '
                     r'changed since it ran\)$', done.stdout, re.M), done.stdout
    shutil.rmtree(tmp_path / 'alone')
