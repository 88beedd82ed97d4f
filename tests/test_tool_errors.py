"""User mistakes given to tools/convert_checkpoint.py and tools/complexity.py: one line naming
the problem on stderr, exit status 2, no traceback."""
from __future__ import annotations

import pytest
import torch

from backbones.mobilemamba import MobileMamba
from tools import complexity, convert_checkpoint

TINY_MOBILEMAMBA = dict(widths=(48, 64, 80), depths=(1, 1, 1))


def _exit_2(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    return err


@pytest.fixture
def garbage(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('these are not weights\n12 34\n')
    return path


def test_convert_garbage_file(capsys, garbage, tmp_path):
    err = _exit_2(capsys, convert_checkpoint.main,
                  ['mambavision', str(garbage), str(tmp_path / 'out.pth')])
    assert 'not a PyTorch checkpoint' in err and str(garbage) in err
    assert not (tmp_path / 'out.pth').exists()


def test_convert_missing_file(capsys, tmp_path):
    err = _exit_2(capsys, convert_checkpoint.main,
                  ['mobilemamba', str(tmp_path / 'nope.pth'), str(tmp_path / 'out.pth')])
    assert 'no such file' in err


def test_convert_wrong_family(capsys, tmp_path):
    src = tmp_path / 'mobilemamba.pth'
    torch.save({'model': MobileMamba(TINY_MOBILEMAMBA).state_dict()}, src)
    err = _exit_2(capsys, convert_checkpoint.main,
                  ['mambavision', str(src), str(tmp_path / 'out.pth')])
    assert 'mobilemamba weights, not mambavision' in err


def test_convert_bad_arch(capsys, tmp_path):
    src = tmp_path / 'mobilemamba.pth'
    torch.save({'model': MobileMamba(TINY_MOBILEMAMBA).state_dict()}, src)
    err = _exit_2(capsys, convert_checkpoint.main,
                  ['mobilemamba', str(src), str(tmp_path / 'out.pth'), '--arch', 'XL'])
    assert "'XL'" in err and 'S6' in err


def test_convert_a_file_of_no_tensors(capsys, tmp_path):
    src = tmp_path / 'dict.pth'
    torch.save({'epoch': 3}, src)
    err = _exit_2(capsys, convert_checkpoint.main,
                  ['mobilemamba', str(src), str(tmp_path / 'out.pth')])
    assert 'no tensors' in err


def test_complexity_bad_arch(capsys):
    err = _exit_2(capsys, complexity.main, ['--model', 'mambavision', '--arch', 'XL'])
    assert 'XL' in err and "'T'" in err


def test_complexity_missing_config(capsys, tmp_path):
    err = _exit_2(capsys, complexity.main, [str(tmp_path / 'nope.py')])
    assert 'no such file' in err


def test_complexity_garbage_config(capsys, garbage):
    err = _exit_2(capsys, complexity.main, [str(garbage)])
    assert err.startswith('complexity: error:')


def test_complexity_garbage_python_config(capsys, tmp_path):
    path = tmp_path / 'broken.py'
    path.write_text('model = dict(type=\n')
    err = _exit_2(capsys, complexity.main, [str(path)])
    assert err.startswith('complexity: error:')
