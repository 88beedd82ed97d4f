"""tools/complexity.py: MACs of convs, CPU attention and selective scans, and Table 1."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones.model_complexity import _input_shape, measure_complexity
from tools.complexity import main

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent
TINY = dict(depths=(1, 1, 4, 2), num_heads=(1, 2, 2, 4), dim=8, in_dim=8, drop_path_rate=0.,
            layer_scale=None)


def test_input_shapes():
    assert _input_shape(224) == (3, 224, 224)
    assert _input_shape([512, 512]) == (3, 512, 512)
    assert _input_shape((1, 64, 32)) == (1, 64, 32)
    with pytest.raises(ValueError):
        _input_shape((1, 2, 3, 4))


def test_conv_counts_multiply_accumulates():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    result = measure_complexity(conv, (3, 16, 20))
    assert result['params'] == 8 * 3 * 9
    assert result['flops'] == 8 * 3 * 9 * 16 * 20  # MACs, not 2x
    assert result['scan_flops'] == 0 and result['attn_flops'] == 0


class _Attend(nn.Module):
    def forward(self, x):  # (1, C=4, H, W) -> 2 heads of dim 2 over H*W tokens
        B, C, H, W = x.shape
        q = x.flatten(2).transpose(1, 2).reshape(B, H * W, 2, C // 2).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q)


def test_attention_is_counted_on_cpu():
    result = measure_complexity(_Attend(), (4, 5, 6))
    L = 30
    assert result['attn_flops'] == 2 * (2 * L * L * 2)  # QK^T and AV, per head
    assert result['flops'] == result['attn_flops']


def test_scans_are_counted_once_and_not_run(monkeypatch):
    import backbones.mambavision as mv
    model = mv.MambaVision(TINY, window_size=(8, 8, 4, 2))
    result = measure_complexity(model, 64)
    n_mixers = sum(isinstance(m, mv.MambaVisionMixer) for m in model.modules())
    assert result['scan_calls'] == n_mixers == 3 and result['scan_flops'] > 0
    # Everything but the scan: the same count with the scan replaced by zeros.
    monkeypatch.setattr(mv, 'selective_scan', lambda u, *a, **k: torch.zeros_like(u))
    without = measure_complexity(model, 64)
    assert without['scan_calls'] == 0
    assert result['flops'] - result['scan_flops'] == without['flops']


def test_mambavision_t_against_table1(capsys):
    (result, ) = main(['--model', 'mambavision', '--arch', 'T', '--shape', '224'])
    out = capsys.readouterr().out
    assert 'mambavision-T' in out and '31.8' in out and '4.4' in out
    assert result['paper'] == (31.8, 4.4)
    assert abs(result['params'] / 1e6 - 31.8) < 0.1
    # The paper's count skips attention (fvcore does not know scaled_dot_product_attention).
    assert abs((result['flops'] - result['attn_flops']) / 1e9 - 4.4) < 0.1
    assert 4.4 < result['flops'] / 1e9 < 4.4 * 1.05


def test_config_path_builds_through_its_toolkit():
    import mmpretrain  # noqa: F401  (pinned: a missing one is a broken install, never a skip)
    (result, ) = main([str(REPO / 'cls_configs/mambavision/mambavision-t_in1k.py'),
                       '--shape', '224'])
    assert abs(result['params'] / 1e6 - 31.8) < 0.1
    assert abs((result['flops'] - result['attn_flops']) / 1e9 - 4.4) < 0.1
