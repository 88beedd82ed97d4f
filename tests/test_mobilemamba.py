"""MobileMamba backbone: sizes against the README, flags, fusion, backbone interface, conversion,
and (where mmpretrain is installed) the head, the distillation model and the configs."""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from backbones.mobilemamba import (MRFFI, SS2D, BNLinear, ConvBN, MobileMamba, WTEMamba,
                                   convert_official_state_dict, split_channels)
from backbones.ops.haar import haar_filters

torch.set_num_threads(min(2, torch.get_num_threads()))
REPO = Path(__file__).resolve().parent.parent
TINY = dict(widths=(48, 64, 80), depths=(1, 1, 1))

# Official README: params (M) with the 1000-class head, FLOPs (M) at the variant's resolution.
README = dict(T2=(8.8, 255, 192), T4=(14.2, 413, 192), S6=(15.0, 652, 224),
              B1=(17.1, 1080, 256), B2=(17.1, 2427, 384), B4=(17.1, 4313, 512))


def _classifier(backbone: MobileMamba, num_classes: int = 1000) -> nn.Module:
    """Backbone + global average pool + BN1d + Linear: the official classifier, toolkit-free."""

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = backbone
            self.head = BNLinear(backbone.embed_dims[-1], num_classes)

        def forward(self, x):
            return self.head(self.backbone(x)[-1].mean((2, 3)))

    return Classifier()


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g) * 0.5 + 1.0)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


# ------------------------------------------------------------------------------------------------
# Sizes against the README
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', ['T2', 'T4', 'S6', 'B1'])  # B2/B4 are B1 at other resolutions
def test_param_counts_match_readme(arch):
    params = _n_params(_classifier(MobileMamba(arch))) / 1e6
    assert abs(params - README[arch][0]) < 0.1, f'{arch}: {params:.3f}M vs {README[arch][0]}M'


def test_b_variants_share_one_architecture():
    assert MobileMamba.arch_zoo['B1'] == MobileMamba.arch_zoo['B2'] == MobileMamba.arch_zoo['B4']


@pytest.mark.parametrize('arch', ['T2', 'T4', 'S6', 'B1', 'B2', 'B4'])
def test_flops_match_readme(arch):
    """FLOPs (MACs, scan included) through tools/complexity.py, within 3% of the README.

    Measured ratios are 0.99-1.00: our counter counts convs and matmuls (BN folded first, as the
    official fvcore count on the fused model) plus the analytic scan, and leaves out the few
    element-wise ops (LayerNorm, SiLU, gating) fvcore adds; 3% covers that and nothing more.
    """
    from backbones import model_complexity as complexity
    params_ref, flops_ref, res = README[arch]
    model = _classifier(MobileMamba(arch)).eval()
    model.backbone.fuse()
    model.head = model.head.fuse()
    out = complexity.measure_complexity(model, (res, res))
    ratio = out['flops'] / 1e6 / flops_ref
    print(f'{arch} @ {res}: {out["flops"] / 1e6:.1f}M FLOPs vs {flops_ref}M (ratio {ratio:.3f})')
    assert 0.97 < ratio < 1.03


# ------------------------------------------------------------------------------------------------
# The channel rule
# ------------------------------------------------------------------------------------------------
def test_official_channel_rule():
    # S6 by hand: 192 -> int(153.6)=153 -> 160 (nearer than 144); local int(38.4)=38 cut to 32.
    assert split_channels(192, 0.8, 0.2) == (160, 32, 0)
    # 384: int(268.8)=268 -> 272; local int(76.8)=76; identity the rest.
    assert split_channels(384, 0.7, 0.2) == (272, 76, 36)
    assert split_channels(448, 0.6, 0.3) == (272, 134, 42)
    assert split_channels(448, 0.6, 0.3, identity=False) == (272, 176, 0)
    # A tie (8 from 192 and from 208) rounds up, as in the official nearest_multiple_of_16.
    assert split_channels(400, 0.5, 0.0) == (208, 0, 192)
    assert split_channels(64, 0.0, 0.5) == (0, 32, 32)


@pytest.mark.parametrize('xi,mu,match', [
    (1.0, 0.0, '208 global channels'),     # int(200) rounds up to 208 > 200
    (0.7, 0.4, r'global_ratio=0.7 \+ local_ratio=0.4 > 1'),
    (-0.1, 0.2, r'global_ratio=-0.1 is outside the valid range \[0, 1\]'),
    (0.5, 1.5, r'local_ratio=1.5 is outside the valid range \[0, 1\]'),
])
def test_ratios_that_cannot_fit_raise(xi, mu, match):
    with pytest.raises(ValueError, match=match):
        split_channels(200, xi, mu)
    with pytest.raises(ValueError, match=match):
        MobileMamba(dict(widths=(200, 64, 80), depths=(1, 1, 1)), global_ratio=(xi, 0.7, 0.6),
                    local_ratio=(mu, 0.2, 0.3))


# ------------------------------------------------------------------------------------------------
# Flags: every value builds, runs forward and backward, and changes only its part
# ------------------------------------------------------------------------------------------------
FLAG_CASES = [
    dict(),
    dict(mrffi_cfg=dict(wavelet=False)),
    dict(mrffi_cfg=dict(identity=False)),
    dict(mrffi_cfg=dict(local_op='multi')),
    dict(mrffi_cfg=dict(local_op='multi', local_kernels=2)),
    dict(mrffi_cfg=dict(local_op='multi', local_kernels=(3, 7))),
    dict(mrffi_cfg=dict(scan='uni')),
    dict(stages=4),
    dict(kernels=(3, 3, 5), global_ratio=(0.5, 0.5, 0.5), local_ratio=(0.25, 0.25, 0.25)),
    dict(mrffi_cfg=[dict(wavelet=False), dict(), dict(scan='uni', identity=False)]),
    dict(with_cp=True, drop_path_rate=0.1),
]


@pytest.mark.parametrize('kwargs', FLAG_CASES, ids=lambda k: repr(k)[:60])
def test_every_flag_runs_forward_and_backward(kwargs):
    torch.manual_seed(0)
    model = MobileMamba(TINY, **kwargs).train()
    stages = kwargs.get('stages', 3)
    first, size = (16, 64) if stages == 3 else (4, 32)  # stride-4 start: keep the scans short
    outs = model(torch.randn(2, 3, size, size))
    assert [o.shape[-1] for o in outs] == [size // (first * 2 ** i) for i in range(stages)]
    sum(o.pow(2).mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, no_grad[:5]
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _param_shapes(model):
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def _diff(a, b):
    ka, kb = _param_shapes(a), _param_shapes(b)
    return {k for k in set(ka) | set(kb) if ka.get(k) != kb.get(k)}


@pytest.mark.parametrize('flags,allowed', [
    (dict(wavelet=False), r'\.global_op\.(wavelet_convs|wavelet_scale)\.'),
    (dict(identity=False), r'\.local_op\.'),
    (dict(local_op='multi'), r'\.local_op\.'),
    (dict(scan='uni'), r'\.global_atten\.(x_proj_weight|dt_projs_weight|dt_projs_bias|A_logs|Ds)$'),
])
def test_a_flag_changes_only_its_part(flags, allowed):
    import re
    base = MobileMamba(TINY)
    other = MobileMamba(TINY, mrffi_cfg=flags)
    changed = _diff(base, other)
    assert changed, 'the flag changed nothing'
    assert all(re.search(allowed, k) for k in changed), sorted(changed)[:6]


def test_flag_effects_on_modules():
    mixers = lambda m: [mod for mod in m.modules() if isinstance(mod, MRFFI)]  # noqa: E731
    for mixer in mixers(MobileMamba(TINY, mrffi_cfg=dict(wavelet=False))):
        assert not mixer.global_op.wavelet and not hasattr(mixer.global_op, 'wavelet_convs')
    for a, b in zip(mixers(MobileMamba(TINY)), mixers(MobileMamba(TINY, mrffi_cfg=dict(
            identity=False)))):
        assert b.identity_channels == 0 and b.global_channels == a.global_channels
        assert b.local_channels == a.local_channels + a.identity_channels
    for mixer in mixers(MobileMamba(TINY, mrffi_cfg=dict(scan='uni'))):
        assert mixer.global_op.global_atten.k_group == 1
    multi = mixers(MobileMamba(TINY, mrffi_cfg=dict(local_op='multi')))
    # Kernels derived from the stage kernels 7, 5, 3: n = 3, 2, 1 groups, largest = official k.
    assert [m.local_op.kernels for m in multi] == [(3, 5, 7), (3, 5), (3,)]
    assert all(sum(m.local_op.splits) == m.local_channels for m in multi)
    explicit = mixers(MobileMamba(TINY, mrffi_cfg=dict(local_op='multi', local_kernels=2)))
    assert [m.local_op.kernels for m in explicit] == [(3, 5)] * 3
    four = MobileMamba(TINY, stages=4)
    assert four.embed_dims == (24, 48, 64, 80) and four.arch_settings['kernels'] == (7, 7, 5, 3)
    assert len([m for m in four.patch_embed if isinstance(m, ConvBN)]) == 2
    assert len([m for m in MobileMamba(TINY).patch_embed if isinstance(m, ConvBN)]) == 4


@pytest.mark.parametrize('kwargs,match', [
    (dict(mrffi_cfg=dict(local_op='triple')), r"local_op='triple' is not one of \('single', 'multi'\)"),
    (dict(mrffi_cfg=dict(scan='zigzag')), r"scan='zigzag' is not one of \('bi', 'uni'\)"),
    (dict(mrffi_cfg=dict(wavelet='yes')), r"wavelet='yes' is not one of \(True, False\)"),
    (dict(mrffi_cfg=dict(identity=1)), r'identity=1 is not one of \(True, False\)'),
    (dict(mrffi_cfg=dict(wavlet=False)), r"keys \['wavlet'\] are not valid; valid keys: \['wavelet'"),
    (dict(mrffi_cfg=dict(local_op='multi', local_kernels=(3, 4))), r'local_kernels=\(3, 4\)'),
    (dict(stages=5), r'stages=5 is not one of \(3, 4\)'),
    (dict(kernels=(7, 4, 3)), r'kernel size 4 is not valid'),
    (dict(kernels=(7, 5)), r'kernels=\(7, 5\) has 2 entries; expected 3'),
    (dict(out_indices=(3,)), r'out_indices entry 3 is out of range for 3 stages'),
    (dict(frozen_stages=4), r'frozen_stages=4 is not valid'),
])
def test_bad_values_raise_naming_value_and_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MobileMamba(TINY, **kwargs)


def test_bad_arch_raises():
    with pytest.raises(ValueError, match=r"arch='S7' is not one of \('T2', 'T4', 'S6', 'B1'"):
        MobileMamba('S7')
    with pytest.raises(ValueError, match=r"lacks \['depths'\]"):
        MobileMamba(dict(widths=(48, 64, 80)))


def test_scan_goes_through_ops_selective_scan(monkeypatch):
    import backbones.mobilemamba as mm
    calls = []
    real = mm.selective_scan

    def spy(u, delta, A, B, C, D=None, **kw):
        calls.append((u.shape, B.shape, kw.get('delta_softplus')))
        return real(u, delta, A, B, C, D, **kw)

    monkeypatch.setattr(mm, 'selective_scan', spy)
    ss2d = SS2D(32, scan='bi')
    ss2d(torch.randn(1, 32, 3, 5))
    # Two directions of d_inner=64 channels stacked; grouped B of (batch, K=2, N=1, L=15).
    assert calls == [(torch.Size([1, 128, 15]), torch.Size([1, 2, 1, 15]), True)]


def test_bidirectional_scan_is_direction_symmetric():
    """'bi' = scan(x) + flip(scan(flip(x))) with per-direction weights: swapping the two
    directions' weights and reversing the input reverses the output."""
    torch.manual_seed(0)
    ss2d = SS2D(16, scan='bi').eval()
    with torch.no_grad():
        for p in (ss2d.x_proj_weight, ss2d.dt_projs_weight, ss2d.dt_projs_bias):
            p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(1, 32, 1, 6)
    y = ss2d.forward_core(x)
    swapped = copy.deepcopy(ss2d)
    with torch.no_grad():
        for name in ('x_proj_weight', 'dt_projs_weight', 'dt_projs_bias'):
            getattr(swapped, name).copy_(getattr(ss2d, name).flip(0))
        for name in ('A_logs', 'Ds'):
            getattr(swapped, name).copy_(getattr(ss2d, name).view(2, -1, *getattr(
                ss2d, name).shape[1:]).flip(0).reshape(getattr(ss2d, name).shape))
    y2 = swapped.forward_core(x.flip(-1))
    assert torch.allclose(y2.flip(-1), y, atol=1e-5)


def test_wte_branch_is_the_wavelet_path():
    """WTE-Mamba = s * SS2D(x) + IWT(w * dwconv(WT(x))); with s = 0 only the wavelet path is left,
    and with an identity dwconv it returns w * x exactly (the Haar pair is perfect)."""
    wte = WTEMamba(16, kernel_size=3).eval()
    with torch.no_grad():
        wte.base_scale.weight.zero_()
        conv = wte.wavelet_convs[0]
        conv.weight.zero_()
        conv.weight[:, 0, 1, 1] = 1.0
    x = torch.randn(2, 16, 5, 7)
    assert torch.allclose(wte(x), 0.1 * x, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# BN fusion
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs', [dict(), dict(mrffi_cfg=dict(local_op='multi')),
                                    dict(stages=4)])
def test_fused_model_gives_the_same_outputs(kwargs):
    torch.manual_seed(0)
    model = _classifier(MobileMamba(TINY, **kwargs), num_classes=10)
    _randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 32, 32) if kwargs.get('stages') == 4 else torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        ref_feats = model.backbone(x)
        assert model.backbone.switch_to_deploy() is model.backbone
        model.head = model.head.fuse()
        out = model(x)
        feats = model.backbone(x)
    assert not [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert not [m for m in model.modules() if isinstance(m, (ConvBN, BNLinear))]
    # Re-parameterised too: residual depthwise convs and the WTE scales are folded away.
    from backbones.mobilemamba import Residual, Scale
    assert not [m for m in model.modules() if isinstance(m, Scale)]
    assert not [m for m in model.modules()
                if isinstance(m, Residual) and isinstance(m.m, nn.Conv2d)]
    assert (out - ref).abs().max() < 1e-4
    for a, b in zip(feats, ref_feats):
        assert (a - b).abs().max() < 1e-4
    assert model.backbone.fuse() is model.backbone  # idempotent


# ------------------------------------------------------------------------------------------------
# Backbone interface
# ------------------------------------------------------------------------------------------------
def test_out_indices_and_strides():
    model = MobileMamba(TINY, out_indices=(0, 2))
    outs = model(torch.randn(1, 3, 128, 128))
    assert [tuple(o.shape[1:]) for o in outs] == [(48, 8, 8), (80, 2, 2)]
    assert MobileMamba(TINY, out_indices=(-1,)).out_indices == (2,)
    assert MobileMamba(TINY, stages=4).out_indices == (0, 1, 2, 3)


@pytest.mark.parametrize('frozen', [-1, 0, 1, 3])
def test_frozen_stages(frozen):
    model = MobileMamba(TINY, frozen_stages=frozen)
    model.train()
    parts = [model.patch_embed, model.blocks1, model.blocks2, model.blocks3]
    for i, part in enumerate(parts):
        frozen_part = i <= frozen
        assert all(p.requires_grad != frozen_part for p in part.parameters())
        bns = [m for m in part.modules() if isinstance(m, nn.BatchNorm2d)]
        assert all(m.training != frozen_part for m in bns)
    model(torch.randn(2, 3, 64, 64))  # frozen_stages=0 must not break (the official code does)


def test_norm_eval():
    model = MobileMamba(TINY, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and not any(m.training for m in bns)
    assert model.training
    before = model.blocks1[0].dw0.m.bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, model.blocks1[0].dw0.m.bn.running_mean)


def test_with_cp_gives_the_same_gradients():
    torch.manual_seed(0)
    a = MobileMamba(TINY).train()
    b = MobileMamba(TINY, with_cp=True).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for m in (a, b):
        torch.manual_seed(1)
        m(x)[-1].sum().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), n


def test_init_cfg_pretrained(tmp_path):
    src = MobileMamba(TINY)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in src.state_dict().items()}}, path)
    dst = MobileMamba(TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                          prefix='backbone.'))
    dst.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k


def test_registered_in_root_registry():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='MobileMamba', arch=TINY, mrffi_cfg=dict(scan='uni')))
    assert isinstance(model, MobileMamba)


# ------------------------------------------------------------------------------------------------
# Official checkpoint conversion
# ------------------------------------------------------------------------------------------------
# Key names and shapes read from the official model code (S6): module paths of Conv2d_BN (c/bn),
# Residual (m), MobileMambaBlockWindow (attn), MBWTConv2d (global_atten, base_scale,
# wavelet_convs, wavelet_scale, wt_filter, iwt_filter), SS2D, DWConv2d_BN_ReLU, timm's SE, BN_Linear.
OFFICIAL_S6_KEYS = {
    'patch_embed.0.c.weight': (24, 3, 3, 3),
    'patch_embed.6.bn.running_var': (192,),
    'blocks1.0.dw0.m.c.weight': (192, 1, 3, 3),
    'blocks1.0.ffn0.m.pw1.c.weight': (384, 192, 1, 1),
    'blocks1.0.mixer.m.attn.global_op.global_atten.in_proj.c.weight': (640, 160, 1, 1),
    'blocks1.0.mixer.m.attn.global_op.global_atten.conv2d.bias': (320,),
    'blocks1.0.mixer.m.attn.global_op.global_atten.x_proj_weight': (2, 12, 320),
    'blocks1.0.mixer.m.attn.global_op.global_atten.dt_projs_weight': (2, 320, 10),
    'blocks1.0.mixer.m.attn.global_op.global_atten.dt_projs_bias': (2, 320),
    'blocks1.0.mixer.m.attn.global_op.global_atten.A_logs': (640, 1),
    'blocks1.0.mixer.m.attn.global_op.global_atten.Ds': (640,),
    'blocks1.0.mixer.m.attn.global_op.global_atten.out_norm.weight': (320,),
    'blocks1.0.mixer.m.attn.global_op.global_atten.out_proj.c.weight': (160, 320, 1, 1),
    'blocks1.0.mixer.m.attn.global_op.base_scale.weight': (1, 160, 1, 1),
    'blocks1.0.mixer.m.attn.global_op.wavelet_convs.0.weight': (640, 1, 7, 7),
    'blocks1.0.mixer.m.attn.global_op.wavelet_scale.0.weight': (1, 640, 1, 1),
    'blocks1.0.mixer.m.attn.local_op.dwconv3x3.weight': (32, 1, 7, 7),
    'blocks1.0.mixer.m.attn.local_op.bn2.bias': (32,),
    'blocks1.0.mixer.m.attn.proj.1.c.weight': (192, 192, 1, 1),
    'blocks1.0.ffn1.m.pw2.bn.weight': (192,),
    'blocks2.0.0.m.c.weight': (192, 1, 3, 3),
    'blocks2.0.1.m.pw2.c.weight': (192, 384, 1, 1),
    'blocks2.1.conv1.c.weight': (768, 192, 1, 1),
    'blocks2.1.conv2.c.weight': (768, 1, 3, 3),
    'blocks2.1.se.fc1.weight': (192, 768, 1, 1),
    'blocks2.1.se.fc2.bias': (768,),
    'blocks2.1.conv3.c.weight': (384, 768, 1, 1),
    'blocks2.2.1.m.pw1.c.weight': (768, 384, 1, 1),
    'blocks2.4.mixer.m.attn.local_op.dwconv3x3.weight': (76, 1, 5, 5),
    'blocks3.4.mixer.m.attn.global_op.global_atten.x_proj_weight': (2, 19, 544),
    'head.bn.running_mean': (448,),
    'head.l.weight': (1000, 448),
}


def _official_state_dict(model: nn.Module) -> dict:
    """Our classifier's weights in the official layout: ``head.*`` at the top, no ``backbone.``,
    plus the frozen Haar banks the official code stores as parameters, under DDP's ``module.``."""
    sd = {}
    for k, v in model.state_dict().items():
        sd['module.' + (k[len('backbone.'):] if k.startswith('backbone.') else k)] = v.clone()
    for name, m in model.backbone.named_modules():
        if isinstance(m, WTEMamba) and m.wavelet:
            c = m.global_atten.in_proj.c.in_channels
            sd[f'module.{name}.wt_filter'] = haar_filters(c)
            sd[f'module.{name}.iwt_filter'] = haar_filters(c)
    return {'model': sd}


def test_our_keys_are_the_official_keys():
    sd = _classifier(MobileMamba('S6')).state_dict()
    ours = {k[len('backbone.'):] if k.startswith('backbone.') else k: tuple(v.shape)
            for k, v in sd.items()}
    for key, shape in OFFICIAL_S6_KEYS.items():
        assert ours.get(key) == shape, (key, ours.get(key), shape)


@pytest.mark.parametrize('ema', [False, True], ids=['net', 'net_E'])
def test_converter_on_the_official_trainers_checkpoint(ema, mobilemamba_fixture,
                                                        mobilemamba_official_checkpoint):
    """backbones.convert (what tools/convert_checkpoint.py and eval run) on the checkpoint file the
    official trainer writes, made by the official code (tools/make_mobilemamba_fixture.py: the
    official model saved by BaseTrainer.save_checkpoint, "net" and its EMA "net_E" beside the
    optimizer, scheduler, scaler and counters): read without trusting it, the model's or the EMA's
    weights taken, converted; our model then gives the official model's logits."""
    from backbones.convert import convert, detect_family, load_official
    weights = load_official(str(mobilemamba_official_checkpoint), ema=ema)
    assert detect_family(weights) == 'mobilemamba'
    converted = convert('mobilemamba', weights)
    assert not any('wt_filter' in k for k in converted)
    kwargs = mobilemamba_fixture['kwargs']
    backbone = MobileMamba(dict(widths=tuple(kwargs['embed_dim']), depths=tuple(kwargs['depth'])),
                           global_ratio=kwargs['global_ratio'], local_ratio=kwargs['local_ratio'],
                           kernels=kwargs['kernels'])
    model = _classifier(backbone, kwargs['num_classes'])
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model.eval()
    with torch.no_grad():
        logits = model(mobilemamba_fixture['input'])
    # The official model's logits, or its EMA's (far apart: which one is taken matters).
    expected = mobilemamba_fixture['logits_E' if ema else 'logits']
    relative = ((logits - expected).abs().max() / expected.abs().max()).item()
    assert relative < 1e-5, relative


def test_converter_downstream_and_bare_backbone():
    backbone = MobileMamba(TINY)
    det = {'state_dict': {**{f'backbone.{k}': v for k, v in backbone.state_dict().items()},
                          'neck.lateral_convs.0.conv.weight': torch.zeros(1),
                          'bbox_head.retina_cls.bias': torch.zeros(1)}}
    out = convert_official_state_dict(det)
    assert out['neck.lateral_convs.0.conv.weight'].shape == (1,)
    assert 'bbox_head.retina_cls.bias' in out
    bare = convert_official_state_dict(det, backbone_prefix='')
    bare = {k: v for k, v in bare.items() if not k.startswith(('neck.', 'bbox_head.'))}
    MobileMamba(TINY).load_state_dict(bare, strict=True)


def test_converter_rejects_a_non_haar_filter_bank():
    with pytest.raises(ValueError, match='not the db1'):
        convert_official_state_dict({'blocks1.0.mixer.m.attn.global_op.wt_filter':
                                     torch.ones(8, 1, 2, 2)})


# ------------------------------------------------------------------------------------------------
# mmpretrain: head, distillation, configs
# ------------------------------------------------------------------------------------------------
VARIANTS = dict(t2=('T2', 192, 219), t4=('T4', 192, 219), s6=('S6', 224, 256),
                b1=('B1', 256, 292), b2=('B2', 384, 438), b4=('B4', 512, 585))


def _cfg(name):
    from mmengine.config import Config
    return Config.fromfile(str(REPO / 'cls_configs' / 'mobilemamba' / name))


def _find(pipeline, type_):
    return [t for t in pipeline if t['type'] == type_]


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_variant_configs(variant):
    arch, res, resize = VARIANTS[variant]
    cfg = _cfg(f'mobilemamba-{variant}_in1k.py')
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == 'MobileMamba' and cfg.model.backbone.arch == arch
    assert cfg.model.head.type == 'BNLinearClsHead' and cfg.model.head.num_classes == 1000
    assert 'backbones' in cfg.custom_imports.imports
    assert cfg.custom_imports.allow_failed_imports is False
    train = cfg.train_dataloader.dataset.pipeline
    # The official transform (timm, interpolation 'random'): tests/test_official_recipes.py.
    assert _find(train, 'RandomInterpResizedCrop')[0]['scale'] == res
    assert _find(train, 'RandomInterpRandAugment')[0]['magnitude_level'] == 9
    assert _find(train, 'RandomErasing')[0]['erase_prob'] == 0.25
    test = cfg.test_dataloader.dataset.pipeline
    assert _find(test, 'ResizeEdge')[0]['scale'] == resize
    assert _find(test, 'CenterCrop')[0]['crop_size'] == res
    assert cfg.val_dataloader.dataset.pipeline == test
    opt = cfg.optim_wrapper
    # 1.5e-3 per 512 images at the official 1024; other batches: ablations/compose.py.
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 3e-3
    assert opt.optimizer.weight_decay == 0.05 and opt.clip_grad.max_norm == 5.0
    assert opt.type == 'AmpOptimWrapper' and not cfg.auto_scale_lr.enable
    assert cfg.train_cfg.max_epochs == 300
    # timm's cosine as the official trainer runs it: tests/test_official_recipes.py.
    (schedule, ) = cfg.param_scheduler
    assert (schedule.type, schedule.warmup, schedule.cycle) == ('TimmCosineLR', 20, 300)
    ema = [h for h in cfg.custom_hooks if h['type'] == 'StepEMAHook'][0]
    assert abs(ema['momentum'] - 2e-4) < 1e-12  # mmengine's momentum = 1 - decay 0.9998
    augments = {a['type']: a['alpha'] for a in cfg.model.train_cfg.augments}
    assert augments == {'Mixup': 0.8, 'CutMix': 1.0}
    assert cfg.model.head.loss.type == 'LabelSmoothLoss'
    assert cfg.model.head.loss.label_smooth_val == 0.1


def _tiny_classifier_cfg(variant='s6'):
    cfg = _cfg(f'mobilemamba-{variant}_in1k.py')
    model = copy.deepcopy(cfg.model)
    model.backbone.arch = dict(TINY)
    model.head.in_channels = TINY['widths'][-1]
    model.head.num_classes = 10
    # The runner injects the top-level data_preprocessor; a bare MODELS.build does not.
    model.data_preprocessor = dict(cfg.data_preprocessor, num_classes=10)
    return cfg, model


def _batch(n=4, size=64, classes=10):
    from mmpretrain.structures import DataSample
    inputs = [torch.randint(0, 255, (3, size, size), dtype=torch.uint8) for _ in range(n)]
    samples = [DataSample().set_gt_label(i % classes) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def test_classifier_trains_and_fuses():
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    import backbones.mobilemamba_head  # noqa: F401
    init_default_scope('mmpretrain')
    cfg, model_cfg = _tiny_classifier_cfg()
    model = MODELS.build(model_cfg)
    data = model.data_preprocessor(_batch(), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss'} and torch.isfinite(losses['loss'])
    losses['loss'].backward()
    _randomize_bn(model)
    model.eval()
    data = model.data_preprocessor(_batch(), training=False)
    with torch.no_grad():
        ref = model(data['inputs'], mode='tensor')
        model.backbone.fuse()
        model.head.fuse()
        out = model(data['inputs'], mode='tensor')
    assert (out - ref).abs().max() < 1e-4


def test_dagger_config_and_distillation(tmp_path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    import engine.distill  # noqa: F401
    import backbones.mobilemamba_head  # noqa: F401
    init_default_scope('mmpretrain')
    cfg = _cfg('mobilemamba-s6_in1k-dagger.py')
    assert cfg.model.type == 'DistillImageClassifier'
    assert cfg.train_cfg.max_epochs == 1000
    assert cfg.model.distill_cfg.tau == 1.0 and cfg.model.distill_cfg.loss_weight == 5.0
    assert cfg.model.teacher.checkpoint is None
    assert 'engine.distill' in cfg.custom_imports.imports

    _, student = _tiny_classifier_cfg()
    teacher_cfg = dict(type='ImageClassifier', backbone=dict(type='MobileMamba', arch=TINY),
                       head=dict(type='BNLinearClsHead', num_classes=10, in_channels=80))
    # Teacher input 128 px here (224 in the config) to keep the test quick.
    model_cfg = dict(student, type='DistillImageClassifier',
                     distill_cfg=dict(cfg.model.distill_cfg, teacher_input_size=128),
                     teacher=dict(teacher_cfg, checkpoint=None))
    with pytest.raises(ValueError, match='teacher checkpoint missing'):
        MODELS.build(copy.deepcopy(model_cfg))
    model_cfg['teacher']['checkpoint'] = str(tmp_path / 'absent.pth')
    with pytest.raises(FileNotFoundError, match='absent.pth'):
        MODELS.build(copy.deepcopy(model_cfg))

    teacher = MODELS.build(copy.deepcopy(teacher_cfg))
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
    model_cfg['teacher']['checkpoint'] = str(tmp_path / 'teacher.pth')
    model = MODELS.build(model_cfg)
    assert not any('teacher' in k for k in model.state_dict())
    assert copy.deepcopy(model).teacher is model.teacher  # EMA copies share, not clone, it
    assert all(not p.requires_grad for p in model.teacher.parameters())
    data = model.data_preprocessor(_batch(), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss', 'loss_kd'}
    assert losses['loss_kd'] > 0
    (losses['loss'] + losses['loss_kd']).backward()
    # The teacher saw what the official CLSKDLoss gives it: the batch back in [0, 1] pixels
    # (teacher_std 255), resized by torchvision's bicubic tensor resize (no antialiasing in the
    # official torchvision 0.16), at its own size.
    import torchvision.transforms.functional as F_tv
    seen = {}
    handle = model.teacher.backbone.register_forward_pre_hook(
        lambda m, a: seen.setdefault('x', a[0]))
    model.teacher_logits(data['inputs'])
    handle.remove()
    pre = model.data_preprocessor
    pixels = (data['inputs'] * pre.std + pre.mean) / 255
    official = F_tv.resize(pixels, 128, F_tv.InterpolationMode.BICUBIC, antialias=False)
    assert seen['x'].shape == official.shape and torch.allclose(seen['x'], official, atol=1e-5)


def test_convert_checkpoint_tool_reproduces_logits(tmp_path):
    """tools/convert_checkpoint.py on a file in the official layout: no missing/unexpected keys
    against the S6 config's model, and the mmpretrain model then gives the source's logits."""
    from mmengine.runner import load_checkpoint
    from tools import complexity, convert_checkpoint
    torch.manual_seed(0)
    src = _classifier(MobileMamba('S6'))
    _randomize_bn(src)
    src.eval()
    torch.save(_official_state_dict(src), tmp_path / 'official.pth')
    config = str(REPO / 'cls_configs' / 'mobilemamba' / 'mobilemamba-s6_in1k.py')
    report = convert_checkpoint.main(['mobilemamba', str(tmp_path / 'official.pth'),
                                      str(tmp_path / 'ours.pth'), '--config', config])
    assert not report['missing'] and not report['unexpected'] and not report['shape_mismatch']
    by_arch = convert_checkpoint.main(['mobilemamba', str(tmp_path / 'official.pth'),
                                       str(tmp_path / 'ours_arch.pth'), '--arch', 'S6'])
    assert not by_arch['missing'] and not by_arch['unexpected']
    model = complexity.build_model_from_config(config)
    load_checkpoint(model, str(tmp_path / 'ours.pth'), strict=True)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x, mode='tensor') - src(x)).abs().max() < 1e-5
