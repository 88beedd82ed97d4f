"""MambaVision backbone: variant sizes, official equivalence, the Table 4 / Table 5 factors, the
OpenMMLab backbone interface, the checkpoint converter and the ImageNet configs."""
import argparse
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones.mambavision import (ARCH_SETTINGS, HYBRID_PATTERNS, Attention, MambaVision,
                                   MambaVisionMixer, convert_official_state_dict, hybrid_layout)

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent

# Tiny but complete: conv stages 1-2, hybrid stages 3-4 (windows of 4x4 and 2x2 tokens at 64 px).
TINY = dict(depths=(1, 1, 4, 2), num_heads=(1, 2, 2, 4), dim=8, in_dim=8, drop_path_rate=0.1,
            layer_scale=None)
TINY_WIN = (8, 8, 4, 2)
TABLE1_PARAMS_M = dict(T=31.8, T2=35.1, S=50.1, B=97.7, L=227.9, L2=241.5)
TABLE4_ROWS = [('causal', False, 'gate'), ('regular', False, 'gate'), ('regular', True, 'gate'),
               ('regular', True, 'concat'), ('regular', True, 'add')]


def tiny(**kw) -> MambaVision:
    kw.setdefault('arch', TINY)
    kw.setdefault('window_size', TINY_WIN)
    return MambaVision(**kw)


def mixers(model):
    return [m for m in model.modules() if isinstance(m, MambaVisionMixer)]


def forward_backward(model, size=64):
    model.train()
    outs = model(torch.randn(2, 3, size, size))
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    return outs


# ----------------------------------------------------------------------------- variants
@pytest.mark.parametrize('arch', list(TABLE1_PARAMS_M))
def test_param_counts_match_table1(arch):
    with torch.device('meta'):  # sizes only: no memory, no init
        backbone = MambaVision(arch, out_indices=(3, ), final_norm=True)
        head = nn.Linear(backbone.dims[3], 1000)
    params = sum(p.numel() for m in (backbone, head) for p in m.parameters()) / 1e6
    assert abs(params - TABLE1_PARAMS_M[arch]) < 0.1, params


def test_arch_names_and_dicts_agree():
    assert set(ARCH_SETTINGS) == set(TABLE1_PARAMS_M)
    with torch.device('meta'):
        by_name = MambaVision('t2')
        by_dict = MambaVision(dict(ARCH_SETTINGS['T2']))
    assert [(k, v.shape) for k, v in by_name.state_dict().items()] == \
        [(k, v.shape) for k, v in by_dict.state_dict().items()]
    assert by_name.dims == [80, 160, 320, 640]


# ----------------------------------------------------------------------------- official code
# The official package comes from the `official_mambavision` fixture (tests/conftest.py): missing,
# these tests fail naming its install step; they never skip.
def test_converted_official_weights_reproduce_official_logits(monkeypatch, official_mambavision):
    mv, ref = official_mambavision
    # The official module calls mamba-ssm's CUDA scan; its reference has the same signature.
    monkeypatch.setattr(mv, 'selective_scan_fn', ref)
    torch.manual_seed(0)
    arch = dict(depths=[1, 2, 3, 3], num_heads=[2, 2, 4, 4], dim=16, in_dim=8,
                drop_path_rate=0.2, layer_scale=1e-5)
    official = mv.MambaVision(depths=arch['depths'], num_heads=arch['num_heads'],
                              window_size=[8, 8, 4, 3], dim=16, in_dim=8, mlp_ratio=4,
                              layer_scale=1e-5, num_classes=10).eval()
    with torch.no_grad():  # trained-looking weights: nothing at its init value
        for p in official.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in official.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    converted = convert_official_state_dict(
        {'module.' + k: v for k, v in official.state_dict().items()})
    ours = MambaVision(arch, window_size=(8, 8, 4, 3), out_indices=(3, ), final_norm=True).eval()
    ours.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()
                          if k.startswith('backbone.')}, strict=True)
    assert set(converted) - {'backbone.' + k for k in ours.state_dict()} == \
        {'head.fc.weight', 'head.fc.bias'}
    for shape in [(2, 3, 64, 64), (1, 3, 70, 90)]:  # 70x90: padded windows in stages 3-4
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = official(x)
            feats = ours(x)[-1]
            logits = F.linear(feats.mean((2, 3)), converted['head.fc.weight'],
                              converted['head.fc.bias'])
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_official_init_quirk_is_kept():
    # The official model re-initialises dt_proj like every Linear (bias 0); a mixer alone keeps
    # Mamba's softplus^-1(dt) bias.
    model = tiny()
    assert all(m.dt_proj.bias.abs().max() == 0 for m in mixers(model))
    alone = MambaVisionMixer(16)
    dt = F.softplus(alone.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6


# ----------------------------------------------------------------------------- Table 4 factors
def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize('conv1,conv2,fusion', TABLE4_ROWS)
def test_table4_rows_build_run_and_differ_only_in_their_factors(conv1, conv2, fusion):
    torch.manual_seed(0)
    model = tiny(mixer_cfg=dict(conv1=conv1, conv2=conv2, fusion=fusion))
    forward_backward(model)
    official = _shapes(tiny())
    row = _shapes(model)
    assert {k: v for k, v in row.items() if '.mixer.' not in k} == \
        {k: v for k, v in official.items() if '.mixer.' not in k}
    expected = {}
    for k, shape in official.items():
        if k.endswith('mixer.conv1d_z.weight') and not conv2:
            continue
        if k.endswith('mixer.out_proj.weight') and fusion != 'concat':
            shape = (shape[0], shape[1] // 2)
        expected[k] = shape
    assert row == expected
    for m in mixers(model):
        assert (m.conv1, m.conv2, m.fusion) == (conv1, conv2, fusion)
        assert (m.dt_bias_twice, m.d_state, m.d_conv, m.d_inner) == (True, 8, 3, m.d_model)


def _mixer_parts(d=16, **flags):
    """A mixer whose out_proj is removed, so the output is the fused (y, z') itself."""
    torch.manual_seed(0)
    mixer = MambaVisionMixer(d, **flags)
    with torch.no_grad():
        mixer.dt_proj.bias.normal_(-2, 0.5)
    return mixer


def _copy_except_out_proj(src, dst):
    state = {k: v for k, v in src.state_dict().items() if not k.startswith('out_proj')}
    dst.load_state_dict(state, strict=False)
    dst.out_proj = nn.Identity()


def test_fusion_concat_gate_add_semantics():
    x = torch.randn(2, 12, 16)
    concat = _mixer_parts()
    concat.out_proj = nn.Identity()
    with torch.no_grad():
        y, z = concat(x).chunk(2, dim=-1)
        for fusion, expected in (('gate', y * z), ('add', y + z)):
            other = MambaVisionMixer(16, fusion=fusion)
            assert other.out_proj.in_features == 8
            _copy_except_out_proj(concat, other)
            torch.testing.assert_close(other(x), expected)
    assert not torch.allclose(y * z, y + z)


def test_conv2_off_feeds_silu_z():
    x = torch.randn(2, 12, 16)
    with_conv2 = _mixer_parts()
    no_conv2 = MambaVisionMixer(16, conv2=False)
    assert no_conv2.conv1d_z is None
    _copy_except_out_proj(with_conv2, no_conv2)
    with_conv2.out_proj = nn.Identity()
    with torch.no_grad():
        z_plain = F.silu(no_conv2.in_proj(x)[..., 8:])
        out, ref = no_conv2(x), with_conv2(x)
    torch.testing.assert_close(out[..., 8:], z_plain)
    torch.testing.assert_close(out[..., :8], ref[..., :8])  # the SSM branch is untouched
    assert not torch.allclose(out[..., 8:], ref[..., 8:])


def test_dt_bias_twice_is_the_only_difference():
    x = torch.randn(2, 12, 16)
    twice = _mixer_parts()
    once = MambaVisionMixer(16, dt_bias_twice=False)
    state = twice.state_dict()
    # softplus(W dt + 2 b) with b == softplus(W dt + b') with b' = 2 b.
    once.load_state_dict(dict(state, **{'dt_proj.bias': 2 * state['dt_proj.bias']}))
    with torch.no_grad():
        torch.testing.assert_close(once(x), twice(x))
        once.load_state_dict(state)
        assert not torch.allclose(once(x), twice(x))


@pytest.mark.parametrize('conv1,causal', [('causal', True), ('regular', False)])
def test_causal_conv1_never_sees_later_positions(conv1, causal):
    # conv2 off (Table 4 row 1): the z branch is pointwise, so the mixer is causal iff conv1 is.
    mixer = _mixer_parts(conv1=conv1, conv2=False, fusion='gate').eval()
    x = torch.randn(1, 20, 16)
    t = 11
    x2 = x.clone()
    x2[:, t:] += torch.randn_like(x2[:, t:])
    with torch.no_grad():
        a, b = mixer(x), mixer(x2)
    assert torch.equal(a[:, :t], b[:, :t]) == causal
    assert not torch.allclose(a[:, t:], b[:, t:])


# ----------------------------------------------------------------------------- Table 5 patterns
T_LAYOUTS = dict(last_half=('MMMMSSSS', 'MMSS'), first_half=('SSSSMMMM', 'SSMM'),
                 alternate_sm=('SMSMSMSM', 'SMSM'), alternate_ms=('MSMSMSMS', 'MSMS'),
                 last_quarter=('MMMMMMSS', 'MMMS'))


@pytest.mark.parametrize('pattern', HYBRID_PATTERNS)
def test_table5_patterns_build_and_run(pattern):
    arch = dict(TINY, depths=(1, 1, 8, 4))  # MambaVision-T's depths
    model = tiny(arch=arch, hybrid_pattern=pattern, pattern_seed=3)
    layouts = model.layouts[2:]
    if pattern == 'random':
        assert [s.count('S') for s in layouts] == [4, 2]
        again = tiny(arch=arch, hybrid_pattern=pattern, pattern_seed=3)
        assert again.layouts == model.layouts
    else:
        assert tuple(layouts) == T_LAYOUTS[pattern]
    for level, layout in zip(model.levels[2:], layouts):
        assert [isinstance(b.mixer, Attention) for b in level.blocks] == \
            [c == 'S' for c in layout]
    forward_backward(model)


def test_random_pattern_depends_on_seed():
    layouts = {tuple(tiny(arch=dict(TINY, depths=(1, 1, 8, 4)), hybrid_pattern='random',
                          pattern_seed=s).layouts) for s in range(4)}
    assert len(layouts) > 1


def test_last_half_is_the_official_rule_for_any_depth():
    for n in range(1, 14):
        official = range(n // 2 + 1, n) if n % 2 else range(n // 2, n)
        assert hybrid_layout(n, 'last_half') == [i in official for i in range(n)], n


# ----------------------------------------------------------------------------- backbone interface
def test_outputs_widths_and_any_input_size():
    model = tiny(window_size=(8, 8, 14, 7)).eval()  # stage 3/4 maps are smaller: padded windows
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 70, 90))
    h, w = 18, 23  # stem: two stride-2 convs
    for i, out in enumerate(outs):
        assert out.shape == (1, 8 * 2**i, h, w)
        h, w = (h + 1) // 2, (w + 1) // 2
    with torch.no_grad():
        only = tiny(out_indices=(1, 3), window_size=(8, 8, 14, 7)).eval()
        only.load_state_dict(model.state_dict())
        picked = only(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in picked] == [16, 64]


def test_out_norm_and_final_norm_names():
    model = tiny(out_norm=True, out_indices=(1, 2))
    keys = set(model.state_dict())
    assert {'outnorm1.weight', 'outnorm2.bias'} <= keys
    assert not any(k.startswith(('outnorm0', 'outnorm3', 'norm.')) for k in keys)
    model.eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    for o in outs:  # LayerNorm over channels (weight 1, bias 0 at init)
        torch.testing.assert_close(o.mean(1), torch.zeros_like(o.mean(1)), atol=1e-5, rtol=0)
    cls = tiny(out_indices=(3, ), final_norm=True)
    assert {'norm.weight', 'norm.running_var'} <= set(cls.state_dict())


def test_frozen_stages_and_norm_eval():
    model = tiny(frozen_stages=2, out_norm=True, norm_eval=False)
    model.train()
    for m in (model.patch_embed, model.levels[0], model.levels[1], model.outnorm0):
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert model.levels[2].training and all(p.requires_grad for p in model.levels[2].parameters())
    assert model.outnorm2.weight.requires_grad

    model = tiny(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    lns = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert bns and not any(m.training for m in bns)
    assert lns and all(m.training for m in lns)


def test_drop_path_rate_is_honoured():
    def rates(model):
        return [b.drop_path.p for level in model.levels for b in level.blocks]
    assert rates(tiny())[-1] == pytest.approx(TINY['drop_path_rate'])
    r = rates(tiny(drop_path_rate=0.4))
    assert r[0] == 0 and r[-1] == pytest.approx(0.4) and r == sorted(r)


def test_with_cp_gives_the_same_gradients(monkeypatch):
    import backbones.mambavision as mv
    calls = []
    real = mv.cp.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mv.cp, 'checkpoint', counting)
    torch.manual_seed(0)
    ref = tiny(drop_path_rate=0.)
    ckp = tiny(drop_path_rate=0., with_cp=True)
    ckp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (ref, ckp):
        model.train()
        sum(o.sum() for o in model(x)).backward()
        grads.append({k: p.grad for k, p in model.named_parameters()})
    assert len(calls) == sum(TINY['depths'])
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-5)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = tiny(mixer_cfg=dict(fusion='gate'), out_norm=True).eval()
    torch.save(model.state_dict(), tmp_path / 'w.pth')
    torch.manual_seed(1)
    again = tiny(mixer_cfg=dict(fusion='gate'), out_norm=True).eval()
    again.load_state_dict(torch.load(tmp_path / 'w.pth', weights_only=True))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), again(x)):
            assert torch.equal(a, b)


def test_pretrained_init_cfg_loads_a_converted_checkpoint(tmp_path):
    torch.manual_seed(0)
    src = tiny(out_indices=(3, ), final_norm=True)
    path = tmp_path / 'cls.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in src.state_dict().items()}}, path)
    model = tiny(out_norm=True, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                              prefix='backbone.'))
    model.init_weights()
    state = model.state_dict()
    for k, v in src.state_dict().items():
        if not k.startswith('norm.'):
            assert torch.equal(state[k], v), k


BAD_FLAGS = [
    (dict(mixer_cfg=dict(conv1='same')), r"conv1 must be one of \('regular', 'causal'\)"),
    (dict(mixer_cfg=dict(fusion='mul')), r"fusion must be one of \('concat', 'gate', 'add'\)"),
    (dict(mixer_cfg=dict(conv2='yes')), 'conv2 must be True or False'),
    (dict(mixer_cfg=dict(dt_bias_twice=None)), 'dt_bias_twice must be True or False'),
    (dict(mixer_cfg=dict(d_conv=0)), 'd_state and d_conv'),
    (dict(mixer_cfg=dict(expand=0.3)), 'expand'),
    (dict(mixer_cfg=dict(gating='concat')), 'valid keys'),
    (dict(hybrid_pattern='middle'), "hybrid_pattern must be one of .*'last_half'"),
    (dict(arch='XL'), "arch must be one of .*'T2'"),
    (dict(arch=dict(depths=(1, 1, 1, 1))), 'arch dict needs'),
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(window_size=(8, 8, 14)), 'window_size'),
    (dict(final_norm=True, out_indices=(2, )), 'final_norm'),
    (dict(final_norm=True, out_norm=True, out_indices=(3, )), 'choose one'),
]


@pytest.mark.parametrize('kwargs,message', BAD_FLAGS)
def test_bad_flags_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_bad_mixer_flags_raise_in_the_mixer_too():
    with pytest.raises(ValueError, match='conv1 must be one of'):
        MambaVisionMixer(16, conv1='left')
    with pytest.raises(ValueError, match='fusion must be one of'):
        MambaVisionMixer(16, fusion='Concat')


def test_registered_in_the_root_registry():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='MambaVision', arch=TINY, window_size=TINY_WIN,
                              mixer_cfg=dict(conv1='causal')))
    assert isinstance(model, MambaVision) and mixers(model)[0].conv1 == 'causal'


# ----------------------------------------------------------------------------- checkpoints
def test_convert_official_state_dict_layouts():
    w = torch.zeros(1)
    imagenet = {'module.patch_embed.conv_down.0.weight': w, 'module.levels.2.blocks.0.mixer.D': w,
                'module.norm.weight': w, 'module.head.weight': w, 'module.head.bias': w}
    assert set(convert_official_state_dict(imagenet)) == {
        'backbone.patch_embed.conv_down.0.weight', 'backbone.levels.2.blocks.0.mixer.D',
        'backbone.norm.weight', 'head.fc.weight', 'head.fc.bias'}
    downstream = {'backbone.outnorm0.weight': w, 'backbone.levels.0.blocks.0.conv1.weight': w,
                  'neck.lateral_convs.0.conv.weight': w, 'roi_head.bbox_head.fc_cls.weight': w}
    assert convert_official_state_dict(downstream) == downstream


def _tiny_state(**kw):
    torch.manual_seed(0)
    return tiny(**kw).state_dict()


def test_convert_checkpoint_tool(tmp_path, capsys, monkeypatch):
    from tools.convert_checkpoint import main
    # The tool infers the variant from the weights: make the tiny arch a known variant.
    monkeypatch.setitem(ARCH_SETTINGS, 'TINY', TINY)
    # An official-layout ImageNet file: our names are the official ones; timm also pickles its
    # argparse Namespace and DDP adds "module.".
    backbone = _tiny_state(out_indices=(3, ), final_norm=True)
    official = {'module.' + k: v for k, v in backbone.items()}
    official.update({'module.head.weight': torch.randn(10, 64),
                     'module.head.bias': torch.zeros(10)})
    src, dst = tmp_path / 'official.pth.tar', tmp_path / 'ours.pth'
    torch.save({'state_dict': official, 'args': argparse.Namespace(model='mamba_vision_T'),
                'epoch': 309}, src)
    report = main(['mambavision', str(src), str(dst)])
    out = capsys.readouterr().out
    assert 'MambaVision-TINY classifier' in out  # read by the safe loader, no fallback
    assert not (report['missing'] or report['unexpected'] or report['shape_mismatch'])
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(saved['head.fc.weight'], official['module.head.weight'])
    assert torch.equal(saved['backbone.levels.2.blocks.0.mixer.A_log'],
                       backbone['levels.2.blocks.0.mixer.A_log'])

    # A downstream (mmdet) file: backbone.* with outnorm{i}, plus the detector's own keys; one
    # backbone key dropped, one foreign backbone key added and one reshaped must be reported.
    det = {'backbone.' + k: v for k, v in _tiny_state(out_norm=True).items()}
    det.pop('backbone.levels.3.blocks.0.mixer.D')
    det['backbone.levels.9.foo'] = torch.zeros(1)
    det['backbone.outnorm2.weight'] = torch.zeros(3)
    det['neck.fpn_convs.0.conv.weight'] = torch.zeros(1)
    torch.save({'meta': {}, 'state_dict': det}, src)
    report = main(['mambavision', str(src), str(dst), '--arch', 'tiny'])
    assert report['missing'] == ['backbone.levels.3.blocks.0.mixer.D']
    assert report['unexpected'] == ['backbone.levels.9.foo']
    assert report['shape_mismatch'] == ['backbone.outnorm2.weight']
    assert report['unchecked'] == ['neck.fpn_convs.0.conv.weight']
    with pytest.raises(SystemExit):
        main(['mambavision', str(src), str(dst), '--strict'])


def test_infer_arch_of_official_variants():
    from backbones.convert import infer_mambavision_arch
    for arch in ARCH_SETTINGS:
        with torch.device('meta'):
            state = MambaVision(arch).state_dict()
        assert infer_mambavision_arch({'backbone.' + k: v for k, v in state.items()}) == arch


# ----------------------------------------------------------------------------- ImageNet configs
CONFIGS = {a: REPO / f'cls_configs/mambavision/mambavision-{a.lower()}_in1k.py'
           for a in TABLE1_PARAMS_M}


@pytest.mark.parametrize('arch', list(CONFIGS))
def test_cls_configs_name_their_variant(arch):
    import mmpretrain  # noqa: F401  (pinned: a missing one is a broken install, never a skip)
    from mmengine.config import Config
    cfg = Config.fromfile(str(CONFIGS[arch]))
    assert cfg.custom_imports == dict(
        imports=['backbones', 'engine.lr_schedulers', 'engine.samplers', 'engine.ema',
                 'engine.distribute_bn', 'engine.mesa', 'engine.transforms'],
        allow_failed_imports=False)
    assert cfg.model.type == 'MesaImageClassifier'
    assert cfg.model.backbone.type == 'MambaVision' and cfg.model.backbone.arch == arch
    assert cfg.model.backbone.final_norm and tuple(cfg.model.backbone.out_indices) == (3, )
    assert cfg.model.head.in_channels == ARCH_SETTINGS[arch]['dim'] * 8
    assert cfg.optim_wrapper.optimizer.type == 'Lamb' and cfg.optim_wrapper.optimizer.lr == 5e-3
    assert cfg.auto_scale_lr.base_batch_size == 4096
    assert cfg.custom_hooks[0].momentum == pytest.approx(2e-4)


def test_imagenet_config_loads_a_converted_official_checkpoint(tmp_path, monkeypatch,
                                                               official_mambavision):
    import mmpretrain  # noqa: F401  (pinned: a missing one is a broken install, never a skip)
    mv, ref = official_mambavision
    monkeypatch.setattr(mv, 'selective_scan_fn', ref)
    from mmpretrain.apis import init_model
    from tools.convert_checkpoint import main
    torch.manual_seed(0)
    official = mv.mamba_vision_T().eval()
    with torch.no_grad():
        for m in official.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    src, dst = tmp_path / 'mambavision_tiny_1k.pth.tar', tmp_path / 'ours.pth'
    torch.save({'state_dict': official.state_dict()}, src)
    report = main(['mambavision', str(src), str(dst), '--config', str(CONFIGS['T'])])
    assert not (report['missing'] or report['unexpected'] or report['shape_mismatch'])
    model = init_model(str(CONFIGS['T']), str(dst), device='cpu')
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x, mode='tensor'), official(x), rtol=1e-4, atol=1e-4)
