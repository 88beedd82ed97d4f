"""`--dry-run` prints each run's recipe as it will run, against the official yaml (the fixture made
from the official repository, tests/fixtures/official_recipes.json), and its checkpoint footprint
with the table's total; it writes nothing."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tools.run_table import main

REPO = Path(__file__).resolve().parent.parent
OFFICIAL_T = json.loads((REPO / 'tests' / 'fixtures' / 'official_recipes.json').read_text()
                        )['mambavision']['yaml']['T']


def test_dry_run_prints_the_official_recipe_and_the_footprint(tmp_path, capsys):
    # The official MambaVision-T run: 32 GPUs x its yaml's batch_size.
    assert main(['table4', '--profile', 'full', '--rows', 'conv2-concat', '--tasks', 'cls',
                 '--gpus', '32', '--dry-run', '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
    (recipe, ) = [line.strip() for line in out.splitlines() if line.strip().startswith('recipe:')]
    y = OFFICIAL_T
    batch = y['batch_size']
    # timm trains epochs + cooldown_epochs; MESA from the yaml's weight and start ratio.
    expected = (rf'recipe: effective batch {32 * batch} = 32 (GPUs|CPU processes) x {batch} x 1 '
                rf'accumulation, lr {y["lr"]:.4g}, {y["epochs"] + y["cooldown_epochs"]} epochs, '
                rf'AMP, MESA {y["mesa"]:g} from {y["mesa_start_ratio"]:.0%}, ')
    assert y['amp'] and re.match(expected, recipe), (expected, recipe)
    # The footprint: the run's line, and the table's total (one run: the same numbers).
    (per_run, ) = re.findall(r'checkpoints: 2 kept \+ best, (\S+ \S+) at the end, (\S+ \S+) at '
                             r'peak', out)
    assert f'checkpoints of these 1 runs: {per_run[0]} kept, {per_run[1]} at peak' in out


def test_a_table_warns_when_the_work_dir_disk_cannot_hold_its_checkpoints(tmp_path, capsys):
    """The warning a table prints before it starts (runs/table/orchestrate.py), against this machine's real
    free space: the footprint of the full MambaVision-T ImageNet run, once (fits) and repeated
    past twice the free space (does not)."""
    import shutil

    from ablations.compose import build_row_config
    from runs.table.decide import warn_if_short_of_disk
    from runs.table.footprint import checkpoint_footprint, format_bytes
    cfg = build_row_config('table4', 'conv2-concat', 'cls', profile='full', data_root='/data')
    one = checkpoint_footprint(cfg)
    work = tmp_path / 'work' / 'not-yet-made'  # probed at its nearest existing parent
    warn_if_short_of_disk(work, [one])
    assert one['peak_bytes'] < shutil.disk_usage(tmp_path).free / 2
    assert 'warning' not in capsys.readouterr().out
    many = 2 * shutil.disk_usage(tmp_path).free // one['total_bytes'] + 2
    warn_if_short_of_disk(work, [one] * many)
    out = capsys.readouterr().out
    need = format_bytes(one['total_bytes'] * many)
    assert out.startswith(f'warning: {tmp_path} has ')
    assert "free, but these runs' checkpoints need up to" in out
    assert f'({need} kept at the end)' in out
