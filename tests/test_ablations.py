"""The ablation tables are well-formed data, and bad table data fails loudly."""
from dataclasses import replace

import pytest

from ablations import METRICS, NOT_PUBLISHED, TABLES, get_table
from ablations.schema import Claim, Row


def test_known_tables_and_unknown_name():
    assert list(TABLES) == ['table4', 'table5', 'tableS1', 'mobilemamba_mrffi']
    with pytest.raises(ValueError, match="unknown ablation table 'tabel4'; known tables: table4"):
        get_table('tabel4')


def test_table4_is_the_paper_plus_one_marked_row():
    table = get_table('table4')
    assert [r.slug for r in table.rows if r.in_paper] == [
        'causal-noconv2', 'regular-noconv2', 'conv2-gate', 'conv2-concat']
    assert table.row('conv2-add').in_paper is False
    assert all(v is NOT_PUBLISHED for v in table.row('conv2-add').published.values())
    assert table.row('causal-noconv2').published == dict(top1=80.5, box_ap=44.8, mask_ap=40.4,
                                                         miou=44.2)
    assert 'contradicts' in table.row('causal-noconv2').notes[0]
    assert table.tasks == ('cls', 'det', 'seg')
    flags = {r.slug: r.overrides['mixer_cfg'] for r in table.rows}
    assert flags['causal-noconv2'] == dict(conv1='causal', conv2=False, fusion='gate')
    assert flags['conv2-concat'] == dict(conv1='regular', conv2=True, fusion='concat')


def test_mobilemamba_cells_are_not_published_except_the_baseline():
    table = get_table('mobilemamba_mrffi')
    assert table.row('official').published == dict(top1=78.0)
    assert all(r.published['top1'] is NOT_PUBLISHED for r in table.rows[1:])


def test_every_published_metric_is_known_and_rows_are_found_by_name_or_slug():
    for table in TABLES.values():
        assert set(table.metrics) <= set(METRICS)
        for row in table.rows:
            assert table.row(row.name) is row and table.row(row.slug) is row


@pytest.mark.parametrize('change,message', [
    (dict(metrics=('top1', 'fid')), "unknown metrics ['fid']"),
    (dict(name='table 4'), 'must be letters, digits and _'),
    (dict(base_configs={}), "no base config for tasks ['cls']"),
    (dict(claims=(Claim('last-half', 'nope', 'x'),)), "unknown row 'nope'"),
])
def test_bad_table_data_raises(change, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        replace(get_table('table5'), **change)


def test_bad_rows_raise():
    table = get_table('table5')
    with pytest.raises(ValueError, match='duplicate row slugs'):
        replace(table, rows=table.rows + table.rows[:1])
    with pytest.raises(ValueError, match="row slug 'Bad Slug'"):
        replace(table, rows=(Row('x', 'Bad Slug'),))
    with pytest.raises(ValueError, match=r"published metrics \['miou'\] not in"):
        replace(table, rows=(Row('x', 'x', published=dict(miou=1.0)),))


def test_a_config_file_is_parsed_once_per_version_and_each_caller_gets_its_own(tmp_path):
    """ablations.compose.load_config: the same parse for the same file, a new one after an edit,
    and a copy per caller (a change to one never reaches the next)."""
    import os

    from ablations.compose import load_config
    path = tmp_path / 'base.py'
    path.write_text("model = dict(type='ImageClassifier', depth=3)\n")
    first = load_config(path)
    first.model.depth = 99
    assert load_config(path).model.depth == 3
    path.write_text("model = dict(type='ImageClassifier', depth=4)\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))  # a new version
    assert load_config(path).model.depth == 4
