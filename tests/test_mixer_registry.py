"""Token mixers from the registry: the paper's mixers built through ``type`` are the models the
flag-only configs build, a user's mixer registered here plugs into both backbones, an unknown
type is refused in one line with the registered choices, and docs/mixers.md's example runs."""
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from backbones.mambavision import MambaVision, MambaVisionMixer
from backbones.mixer_contract import check_mixer_contract, registered_mixers
from backbones.mobilemamba import MRFFI, DWConvBNReLU, MobileMamba, MultiKernelDWConv, WTEMamba

torch.set_num_threads(min(2, torch.get_num_threads()))
REPO = Path(__file__).resolve().parent.parent

# Tiny but complete, as in test_mambavision.py / test_mobilemamba.py.
MV_TINY = dict(depths=(1, 1, 4, 2), num_heads=(1, 2, 2, 4), dim=8, in_dim=8, drop_path_rate=0.1,
               layer_scale=None)
MV_WIN = (8, 8, 4, 2)
MM_TINY = dict(widths=(48, 64, 80), depths=(1, 1, 1))


# Names no other module registers, so these tests do not depend on what else is imported.
@MODELS.register_module(name='TestConvOnlyTokenMixer', force=True)
class ConvOnlyTokenMixer(nn.Module):
    """A token mixer without the scan: depthwise conv along the tokens, then a linear."""

    def __init__(self, d_model: int, kernel_size: int = 3):
        super().__init__()
        self.kernel_size = kernel_size
        self.dwconv = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2,
                                groups=d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dwconv(x.transpose(1, 2)).transpose(1, 2))


@MODELS.register_module(name='TestConvOnlyMapOp', force=True)
class ConvOnlyMapOp(nn.Module):
    """An MRFFI operator without the scan: depthwise kxk conv, then a pointwise conv."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2,
                                groups=channels)
        self.pw = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dwconv(x))


def mambavision(seed: int = 0, **kw) -> MambaVision:
    torch.manual_seed(seed)
    return MambaVision(MV_TINY, window_size=MV_WIN, **kw).eval()


def mobilemamba(seed: int = 0, **kw) -> MobileMamba:
    torch.manual_seed(seed)
    return MobileMamba(MM_TINY, **kw).eval()


def assert_same_model(a: nn.Module, b: nn.Module, image: torch.Tensor) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    with torch.no_grad():
        for oa, ob in zip(a(image), b(image), strict=True):
            assert torch.equal(oa, ob)


def mrffis(model: MobileMamba) -> list:
    return [m for m in model.modules() if isinstance(m, MRFFI)]


# ----------------------------------------------------------------------------- paper mixers
@pytest.mark.parametrize('flags', [{}, dict(conv1='causal', conv2=False, fusion='gate'),
                                   dict(fusion='add', d_state=4)])
def test_mambavision_mixer_by_type_is_the_flag_only_model(flags):
    image = torch.randn(2, 3, 64, 64)
    by_flags = mambavision(mixer_cfg=dict(flags) or None)
    by_type = mambavision(mixer_cfg=dict(type='MambaVisionMixer', **flags))
    assert by_type.mixer_cfg == by_flags.mixer_cfg
    assert_same_model(by_flags, by_type, image)
    mixer = next(m for m in by_type.modules() if isinstance(m, MambaVisionMixer))
    assert (mixer.conv1, mixer.conv2, mixer.fusion) == (
        flags.get('conv1', 'regular'), flags.get('conv2', True), flags.get('fusion', 'concat'))


@pytest.mark.parametrize('mrffi_cfg, op_cfgs', [
    (None, dict(global_op_cfg=dict(type='WTEMamba'), local_op_cfg=dict(type='DWConvBNReLU'))),
    (dict(local_op='multi'), dict(local_op_cfg=dict(type='MultiKernelDWConv'))),
    (dict(wavelet=False, scan='uni', local_op='multi', local_kernels=2),
     dict(global_op_cfg=dict(type='WTEMamba'), local_op_cfg=dict(type='MultiKernelDWConv'))),
])
def test_mobilemamba_ops_by_type_are_the_flag_only_model(mrffi_cfg, op_cfgs):
    image = torch.randn(2, 3, 64, 64)
    by_flags = mobilemamba(mrffi_cfg=mrffi_cfg)
    by_type = mobilemamba(mrffi_cfg=mrffi_cfg, **op_cfgs)
    assert_same_model(by_flags, by_type, image)
    flags = mrffi_cfg or {}
    local = MultiKernelDWConv if flags.get('local_op') == 'multi' else DWConvBNReLU
    for mixer in mrffis(by_type):
        assert type(mixer.global_op) is WTEMamba and type(mixer.local_op) is local
        # The flags reach the paper's operators named by type.
        assert mixer.global_op.wavelet == flags.get('wavelet', True)
        assert mixer.global_op.global_atten.scan == flags.get('scan', 'bi')


def test_a_paper_op_named_for_the_other_branch_gets_its_flags():
    # The multi-kernel op as the local op of a local_op='single' model: the flags' kernels.
    model = mobilemamba(local_op_cfg=dict(type='MultiKernelDWConv'))
    for mixer, stage_kernel in zip(mrffis(model), (7, 5, 3)):
        assert mixer.local_op.kernels == tuple(range(3, stage_kernel + 1, 2))


# ----------------------------------------------------------------------------- a user's mixer
def test_user_token_mixer_plugs_into_mambavision():
    image = torch.randn(2, 3, 64, 64)
    model = mambavision(mixer_cfg=dict(type='TestConvOnlyTokenMixer', kernel_size=5))
    # The user's keys and nothing of the paper's flags (the class would refuse them).
    assert model.mixer_cfg == dict(type='TestConvOnlyTokenMixer', kernel_size=5)
    assert not any(isinstance(m, MambaVisionMixer) for m in model.modules())
    mixers = [(i, blk.mixer) for i, level in enumerate(model.levels) if not level.conv
              for blk in level.blocks if not blk.attention]
    assert len(mixers) == sum(layout.count('M') for layout in model.layouts) > 0
    for i, mixer in mixers:
        assert type(mixer) is ConvOnlyTokenMixer and mixer.kernel_size == 5
        assert mixer.proj.in_features == model.dims[i]  # d_model is the stage width
        check_mixer_contract(mixer, model.dims[i], 'tokens')
    with torch.no_grad():
        outs = model(image)
        reference = mambavision()(image)
    assert [o.shape for o in outs] == [o.shape for o in reference]
    assert all(torch.isfinite(o).all() for o in outs)


def test_user_global_op_replaces_wtemamba():
    image = torch.randn(2, 3, 64, 64)
    model = mobilemamba(global_op_cfg=dict(type='TestConvOnlyMapOp'))
    reference = mobilemamba()
    assert not any(isinstance(m, WTEMamba) for m in model.modules())
    for mixer in mrffis(model):
        op = mixer.global_op
        assert type(op) is ConvOnlyMapOp and op.dwconv.in_channels == mixer.global_channels
        # Its own default kernel, not the stage kernel the paper's op would get.
        assert op.dwconv.kernel_size == (3, 3)
        assert type(mixer.local_op) is DWConvBNReLU
        check_mixer_contract(op, mixer.global_channels, 'map')
    # Only the global operator's keys change; every other name stays the official one.
    outside = {k for k in reference.state_dict() if '.global_op.' not in k}
    assert outside == {k for k in model.state_dict() if '.global_op.' not in k}
    with torch.no_grad():
        outs = model(image)
        ref_outs = reference(image)
    assert [o.shape for o in outs] == [o.shape for o in ref_outs]


def test_user_local_op_per_stage():
    cfgs = [dict(type='TestConvOnlyMapOp', kernel_size=k) for k in (1, 3, 5)]
    model = mobilemamba(local_op_cfg=cfgs)
    for mixer, k in zip(mrffis(model), (1, 3, 5)):
        assert type(mixer.global_op) is WTEMamba and type(mixer.local_op) is ConvOnlyMapOp
        assert mixer.local_op.dwconv.kernel_size == (k, k)
        assert mixer.local_op.dwconv.in_channels == mixer.local_channels
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == list(MM_TINY['widths'])


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize('build, key, what, choice', [
    (lambda t: mambavision(mixer_cfg=dict(type=t)), 'mixer_cfg', 'mixer', 'MambaVisionMixer'),
    (lambda t: mobilemamba(global_op_cfg=dict(type=t)), 'global_op_cfg', 'operator',
     'WTEMamba'),
    (lambda t: mobilemamba(local_op_cfg=dict(type=t)), 'local_op_cfg', 'operator',
     'MultiKernelDWConv'),
])
def test_unknown_type_is_refused_with_the_registered_choices(build, key, what, choice):
    with pytest.raises(ValueError) as err:
        build('NoSuchMixer')
    message = str(err.value)
    assert '\n' not in message
    assert re.fullmatch(rf"{key} type 'NoSuchMixer' is not a registered {what}; registered: "
                        rf"[\w, ]+", message), message
    registered = message.split('registered: ')[1].split(', ')
    assert choice in registered
    # Only what fits the backbone's contract: the token mixers take d_model, the operators
    # channels; the backbones themselves fit neither.
    assert ('TestConvOnlyTokenMixer' in registered) == (key == 'mixer_cfg')
    assert ('TestConvOnlyMapOp' in registered) == (key != 'mixer_cfg')
    assert 'MambaVision' not in registered and 'MobileMamba' not in registered


def test_a_registered_type_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match=r"^mixer_cfg type 'MobileMamba' does not fit: .* "
                                         r"takes 'd_model'; registered: .*MambaVisionMixer"):
        mambavision(mixer_cfg=dict(type='MobileMamba'))
    with pytest.raises(ValueError, match=r"^global_op_cfg type 'TestConvOnlyTokenMixer' does "
                                         r"not fit: .* takes 'channels'"):
        mobilemamba(global_op_cfg=dict(type='TestConvOnlyTokenMixer'))


def test_paper_flags_are_still_checked_and_the_width_is_the_backbones():
    with pytest.raises(ValueError, match='valid keys'):
        mambavision(mixer_cfg=dict(type='MambaVisionMixer', gating='concat'))
    with pytest.raises(ValueError, match="fusion must be one of"):
        mambavision(mixer_cfg=dict(type='MambaVisionMixer', fusion='mul'))
    with pytest.raises(ValueError, match='must not set d_model'):
        mambavision(mixer_cfg=dict(type='TestConvOnlyTokenMixer', d_model=8))
    with pytest.raises(ValueError, match='must not set channels'):
        mobilemamba(global_op_cfg=dict(type='TestConvOnlyMapOp', channels=8))


def test_registered_mixers_lists_by_contract_argument():
    assert {'MambaVisionMixer', 'TestConvOnlyTokenMixer'} <= set(registered_mixers('d_model'))
    assert {'WTEMamba', 'MultiKernelDWConv', 'DWConvBNReLU', 'TestConvOnlyMapOp'} <= set(
        registered_mixers('channels'))


# ----------------------------------------------------------------------------- the check
def test_check_mixer_contract_passes_the_paper_mixers():
    check_mixer_contract(MambaVisionMixer(16).eval(), 16, 'tokens')
    check_mixer_contract(WTEMamba(16, kernel_size=3).eval(), 16, 'map')
    check_mixer_contract(MultiKernelDWConv(16, (3, 5)).eval(), 16, 'map', sizes=[(5, 6)])


class _Halves(nn.Module):
    def forward(self, x):
        return x[..., : x.shape[-1] // 2]


class _Pair(nn.Module):
    def forward(self, x):
        return x, x


class _Double(nn.Module):
    def forward(self, x):
        return x.double()


@pytest.mark.parametrize('module, layout, match', [
    (nn.Linear(16, 8), 'tokens', r'maps \(2, 16, 16\) .* to \(2, 16, 8\)'),
    (_Halves(), 'map', r'maps \(2, 16, 7, 7\) .* to \(2, 16, 7, 3\)'),
    (_Pair(), 'tokens', 'returned tuple'),
    (_Double(), 'map', 'torch.float64'),
])
def test_check_mixer_contract_refuses_a_broken_mixer(module, layout, match):
    with pytest.raises(ValueError, match=match):
        check_mixer_contract(module, 16, layout)


# ----------------------------------------------------------------------------- the docs
def test_docs_example_runs():
    # The user's-mixer example of docs/mixers.md, as written: registered under its own name,
    # built into MambaVision, checked and run. Unregistered afterwards so no other test sees it.
    text = (REPO / 'docs' / 'mixers.md').read_text(encoding='utf-8')
    blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
    assert blocks, 'docs/mixers.md has no python example'
    try:
        namespace = {}
        exec(compile(blocks[0], 'docs/mixers.md', 'exec'), namespace)
        model = namespace['model']
        assert isinstance(model, MambaVision)
        assert type(model.levels[2].blocks[0].mixer).__name__ == 'MyMixer'
    finally:
        MODELS.module_dict.pop('MyMixer', None)
