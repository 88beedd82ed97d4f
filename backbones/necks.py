"""Necks for backbones whose finest output is coarser than the stride 4 detectors expect.

``UpsampleFPN`` is registered in mmengine's root ``MODELS`` registry, which mmdet's and mmseg's
registries fall back to, so a config of either toolkit can say ``type='UpsampleFPN'`` after
``custom_imports=dict(imports=['backbones', 'backbones.necks'])``. Only torch, mmengine and mmcv
are imported here, so the module loads without mmdet or mmseg.

Reading of the official MobileMamba downstream design (its code is not readable from here; what
follows comes from a public copy of its detection/segmentation configs and of the FPN they use,
violetweir/supreme-train ``downstream/det/backbones/efficientvit_fpn.py`` and
``downstream/{det,seg}/configs``, which follow EfficientViT's ``EfficientViTFPN``):

* the backbone returns its three stages (strides 16, 32, 64); the neck builds 1x1 laterals and the
  usual top-down sum over those three levels (nearest upsampling to the finer level's size);
* ``num_extra_trans_convs`` transposed convs (kernel 2, stride 2, bias, no norm, no activation in
  the released configs) are chained from the *top-down-merged* stride-16 lateral: 16 -> 8 -> 4;
  each result gets its own 3x3 output conv;
* the outputs are ordered finest first: [4, 8] + [16, 32, 64] + any extra coarser levels (stride-2
  3x3 convs, 'on_input' for RetinaNet, or max-pooling), so Mask R-CNN uses 2 transposed convs and
  5 outputs at strides 4-64, RetinaNet 1 transposed conv plus one 'on_input' conv (8-128);
* the Semantic FPN and DeepLabv3/PSPNet configs of that copy do not upsample at all (a plain FPN
  over strides 16-64, and heads on the stride-64 map).

This is an independent implementation of that reading; it differs from the copy only in being
out-of-place (no in-place sums on the laterals) and in Xavier-initialising the transposed convs
too. ``upsample_norm_cfg`` / ``upsample_act_cfg`` add a norm and an activation after each
transposed conv (the released configs use neither: keep the defaults to reproduce them).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS

_EXTRA_SOURCES = ('on_input', 'on_lateral', 'on_output')


class UpsampleBlock(nn.Sequential):
    """ConvTranspose2d(kernel 2, stride 2), then an optional norm and activation: doubles H, W."""

    def __init__(self, channels: int, norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None) -> None:
        layers: List[nn.Module] = [nn.ConvTranspose2d(channels, channels, 2, stride=2,
                                                      bias=norm_cfg is None)]
        if norm_cfg is not None:
            layers.append(build_norm_layer(norm_cfg, channels)[1])
        if act_cfg is not None:
            layers.append(build_activation_layer(act_cfg))
        super().__init__(*layers)


@MODELS.register_module()
class UpsampleFPN(BaseModule):
    """FPN over a coarse backbone pyramid plus learnt upsampling to finer levels.

    Args:
        in_channels: channels of the backbone maps, finest first (each twice the stride of the
            previous one).
        out_channels: channels of every output.
        num_outs: outputs in all: ``num_upsamples`` finer maps, one per input, then extra
            coarser levels for the rest.
        num_upsamples: transposed convs chained from the finest merged lateral; output strides
            start at ``stride(in[0]) / 2**num_upsamples``.
        add_extra_convs: how the extra coarser levels are made: False (stride-2 max-pooling of
            the last output, as mmdet's FPN for Mask R-CNN), or 'on_input' / 'on_lateral' /
            'on_output' (stride-2 3x3 convs whose first one reads that map), True = 'on_input'.
        relu_before_extra_convs: ReLU before every extra conv after the first.
        upsample_norm_cfg / upsample_act_cfg: norm and activation after each transposed conv.
        conv_cfg / norm_cfg / act_cfg: of the lateral and output convs (mmcv ``ConvModule``).
        upsample_cfg: ``F.interpolate`` arguments of the top-down path.
        init_cfg: Xavier-uniform convs by default, as mmdet's FPN.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int,
                 num_upsamples: int = 2,
                 add_extra_convs: Union[bool, str] = False,
                 relu_before_extra_convs: bool = False,
                 upsample_norm_cfg: Optional[dict] = None,
                 upsample_act_cfg: Optional[dict] = None,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 upsample_cfg: Optional[dict] = None,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        if init_cfg is None:
            init_cfg = dict(type='Xavier', layer=['Conv2d', 'ConvTranspose2d'],
                            distribution='uniform')
        super().__init__(init_cfg=init_cfg)
        in_channels = [int(c) for c in in_channels]
        if not in_channels:
            raise ValueError('in_channels must name at least one backbone map')
        if num_upsamples < 0:
            raise ValueError(f'num_upsamples must be >= 0, got {num_upsamples}')
        num_extra = num_outs - num_upsamples - len(in_channels)
        if num_extra < 0:
            raise ValueError(f'num_outs={num_outs} is fewer than num_upsamples ({num_upsamples}) '
                             f'+ inputs ({len(in_channels)})')
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs not in (False, *_EXTRA_SOURCES):
            raise ValueError(f'add_extra_convs must be False, True or one of {_EXTRA_SOURCES}, '
                             f'got {add_extra_convs!r}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.num_upsamples = num_upsamples
        self.num_extra = num_extra
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.upsample_cfg = dict(mode='nearest') if upsample_cfg is None else dict(upsample_cfg)

        def conv(cin: int, kernel: int, stride: int = 1) -> ConvModule:
            return ConvModule(cin, out_channels, kernel, stride=stride, padding=kernel // 2,
                              conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
                              inplace=False)

        self.lateral_convs = nn.ModuleList(conv(c, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(conv(out_channels, 3) for _ in in_channels)
        # upsamplers[i] makes the map 2**(i+1) times finer than in[0]; up_convs[i] is its 3x3.
        self.upsamplers = nn.ModuleList(
            UpsampleBlock(out_channels, upsample_norm_cfg, upsample_act_cfg)
            for _ in range(num_upsamples))
        self.up_convs = nn.ModuleList(conv(out_channels, 3) for _ in range(num_upsamples))
        self.extra_convs = nn.ModuleList()
        if add_extra_convs:
            for i in range(num_extra):
                cin = in_channels[-1] if i == 0 and add_extra_convs == 'on_input' \
                    else out_channels
                self.extra_convs.append(conv(cin, 3, stride=2))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Backbone maps (finest first) -> ``num_outs`` maps, finest first."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'expected {len(self.in_channels)} backbone maps, got {len(inputs)}')
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + self._upsample(laterals[i], laterals[i - 1])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]

        finer: List[torch.Tensor] = []
        x = laterals[0]
        for upsample, conv in zip(self.upsamplers, self.up_convs):
            x = upsample(x)
            finer.insert(0, conv(x))

        if self.num_extra:
            if not self.add_extra_convs:
                for _ in range(self.num_extra):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                source = {'on_input': inputs[-1], 'on_lateral': laterals[-1],
                          'on_output': outs[-1]}[self.add_extra_convs]
                outs.append(self.extra_convs[0](source))
                for conv in self.extra_convs[1:]:
                    x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(conv(x))
        return tuple(finer + outs)

    def _upsample(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        if 'scale_factor' in self.upsample_cfg:
            return F.interpolate(coarse, **self.upsample_cfg)
        return F.interpolate(coarse, size=fine.shape[2:], **self.upsample_cfg)
