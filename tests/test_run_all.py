"""run_all.sh's command-line contract (no environment needed for these)."""
import re
import subprocess
from pathlib import Path

import ablations

REPO = Path(__file__).resolve().parent.parent
RUN_ALL = REPO / 'run_all.sh'


def _run(*args):
    return subprocess.run([str(RUN_ALL), *args], capture_output=True, text=True, cwd=REPO)


def test_help_lists_every_subcommand():
    out = _run('--help')
    assert out.returncode == 0
    for cmd in ('setup', 'test', 'list', 'report', 'python', 'all', *ablations.TABLES):
        assert re.search(rf'^\s+{cmd}\b', out.stdout, re.M), cmd


def test_unknown_command_or_option_prints_usage_to_stderr_and_exits_2():
    for bad in (['frobnicate'], ['--frobnicate'], []):
        out = _run(*bad)
        assert out.returncode == 2, bad
        assert 'Usage:' in out.stderr and out.stdout == ''


def test_table_names_match_the_ablation_data():
    text = RUN_ALL.read_text()
    listed = re.search(r'^TABLES=\((.*)\)$', text, re.M).group(1).split()
    assert listed == list(ablations.TABLES)


def test_list_shows_tables_and_rows():
    out = _run('list')
    assert out.returncode == 0
    for table in ablations.TABLES.values():
        assert table.name in out.stdout
        for row in table.rows:
            assert row.slug in out.stdout


def test_ci_runs_the_readme_test_command():
    readme = (REPO / 'README.md').read_text()
    ci = (REPO / '.ci' / 'run').read_text()
    assert './run_all.sh test' in readme and './run_all.sh test' in ci
