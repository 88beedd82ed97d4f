"""Does MambaVision's token mixer need its selective scan? Table 4 with one row more: the mixer
without the scan, its two conv branches only. A table of your own (docs/own_ablation.md):

    ./run_all.sh examples/no_scan_ablation.py --rows conv2-concat,no-scan --tasks cls

The mixer is registered in mmengine's MODELS here, and its row names it by ``type``; the runs'
configs import this file again (``custom_imports``), so a training job builds the same mixer.
"""
import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from ablations import Claim, Row, get_table


@MODELS.register_module()
class NoScanMixer(nn.Module):
    """The official mixer (conv1 - conv2 - concat) with the selective scan taken out.

    in_proj splits the tokens into x and z (C/2 each); x: conv1 -> SiLU, z: conv2 -> SiLU; their
    concatenation goes through out_proj. Widths, kernel (3, 'same' padding) and the conv's lack of
    bias are the official mixer's, so this row differs from conv2-concat by the scan alone (and
    the scan's own parameters: x_proj, dt_proj, A_log, D).
    """

    def __init__(self, d_model: int, d_conv: int = 3):
        super().__init__()
        half = d_model // 2
        self.in_proj = nn.Linear(d_model, 2 * half, bias=False)
        self.conv1d_x = nn.Conv1d(half, half, d_conv, padding='same', groups=half, bias=False)
        self.conv1d_z = nn.Conv1d(half, half, d_conv, padding='same', groups=half, bias=False)
        self.out_proj = nn.Linear(2 * half, d_model, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        x, z = self.in_proj(tokens).transpose(1, 2).chunk(2, dim=1)  # (B, C/2, L) each
        y = torch.cat([F.silu(self.conv1d_x(x)), F.silu(self.conv1d_z(z))], dim=1)
        return self.out_proj(y.transpose(1, 2))


_TABLE4 = get_table('table4')

TABLE = dataclasses.replace(
    _TABLE4,
    name='table4_no_scan',  # its runs go to <work-dir>/table4_no_scan/
    title=_TABLE4.title + ', and the mixer without its scan',
    rows=_TABLE4.rows + (
        Row('conv1 - conv2 - concat, no scan', 'no-scan',
            dict(mixer_cfg=dict(type='NoScanMixer'))),
    ),
    claims=_TABLE4.claims + (
        Claim('conv2-concat', 'no-scan', 'the scan > no scan (conv branches only)'),
    ),
)
