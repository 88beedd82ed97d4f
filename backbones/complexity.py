"""Parameters and FLOPs of a config's model or of a backbone variant, against the papers.

    python tools/complexity.py CONFIG [--shape 224 | --shape H W]
    python tools/complexity.py --model mambavision --arch T [--shape 224] [--num-classes 1000]
    python tools/complexity.py --model mambavision --arch all

FLOPs are multiply-accumulates (MACs), the unit the papers call FLOPs: everything but the
selective scan is counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, so
halved), the scan analytically by ``backbones.ops.count_scan_flops`` (which skips computing it).
Attention (``scaled_dot_product_attention``) is counted; fvcore, which the published numbers
were most likely measured with, skips it: the ``w/o attn`` column shows that convention.
``measure_complexity`` is the function the reporter and the tests import.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Published (params M, GFLOPs) at 224 px with a 1000-class head: MambaVision Table 1.
PAPER = {
    ('mambavision', 'T'): (31.8, 4.4),
    ('mambavision', 'T2'): (35.1, 5.1),
    ('mambavision', 'S'): (50.1, 7.5),
    ('mambavision', 'B'): (97.7, 15.0),
    ('mambavision', 'L'): (227.9, 34.9),
    ('mambavision', 'L2'): (241.5, 37.5),
}
PAPER_SHAPE = (224, 224)
MODEL_TYPES = {'mambavision': 'MambaVision', 'mobilemamba': 'MobileMamba'}


def _sdpa_macs_formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_mapping() -> dict:
    # On CPU, scaled_dot_product_attention dispatches to an op FlopCounterMode does not know
    # (it counts the CUDA flash/efficient ones only), which would silently count attention as 0.
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    return {op: _sdpa_macs_formula} if op is not None else {}


def _as_4d(shape) -> tuple:
    """(..., L, d) -> (batch, heads, L, d), folding any leading dims into batch * heads."""
    lead = 1
    for s in shape[:-2]:
        lead *= s
    return (1, lead) + tuple(shape[-2:])


class _AttentionCounter(TorchFunctionMode):
    """MACs of every ``F.scaled_dot_product_attention`` call, whichever kernel then runs it
    (the CPU math fallback shows up as plain bmm ops, indistinguishable from others)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = (kwargs[n] if n in kwargs else args[i]
                       for i, n in enumerate(('query', 'key', 'value')))
            self.macs += sdpa_flop_count(*(_as_4d(t.shape) for t in (q, k, v))) // 2
        return func(*args, **kwargs)


def _input_shape(input_shape: Union[int, Sequence[int]]) -> tuple[int, int, int]:
    """224 -> (3, 224, 224); (H, W) -> (3, H, W); (C, H, W) stays."""
    if isinstance(input_shape, int):
        return (3, input_shape, input_shape)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 1:
        return (3, shape[0], shape[0])
    if len(shape) == 2:
        return (3, ) + shape
    if len(shape) == 3:
        return shape
    raise ValueError(f'input shape must be S, (H, W) or (C, H, W), got {input_shape!r}')


def _run(model: nn.Module, x: torch.Tensor):
    """One forward of whatever ``model`` is: an OpenMMLab model in 'tensor' mode, or a module."""
    from mmengine.model import BaseModel
    if not isinstance(model, BaseModel):
        return model(x)
    module = type(model).__module__
    if module.startswith('mmdet'):
        # Two-stage detectors' 'tensor' mode runs the RPN's predict, which reads image metas.
        from mmdet.structures import DetDataSample
        H, W = x.shape[-2:]
        meta = dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W),
                    batch_input_shape=(H, W), scale_factor=(1., 1.))
        samples = [DetDataSample(metainfo=meta) for _ in range(x.shape[0])]
        return model(x, samples, mode='tensor')
    return model(x, mode='tensor')


def measure_complexity(model: nn.Module, input_shape: Union[int, Sequence[int]] = 224,
                       batch_size: int = 1) -> dict:
    """Params and MACs of one forward of ``model`` (eval mode, no grad) on a random input.

    ``input_shape``: S, (H, W) or (C, H, W). Returns ``params`` (count), ``flops`` (MACs, the
    papers' "FLOPs"), and their parts ``scan_flops`` (selective scans), ``attn_flops``
    (scaled-dot-product attention) and ``scan_calls``.
    """
    from backbones.ops import count_scan_flops
    shape = _input_shape(input_shape)
    params = sum(p.numel() for p in model.parameters())
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device('cpu')
    x = torch.randn(batch_size, *shape, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), count_scan_flops() as scans, _AttentionCounter() as attn, \
                FlopCounterMode(display=False, custom_mapping=_custom_mapping()) as counter:
            _run(model, x)
    finally:
        model.train(was_training)
    other = counter.get_total_flops() // 2
    return dict(params=params, flops=other + scans.flops, scan_flops=scans.flops,
                attn_flops=attn.macs, scan_calls=scans.calls)


# ----------------------------------------------------------------------------- building models
class _ClassifierView(nn.Module):
    """Backbone -> GAP -> Linear: an ImageClassifier's compute without mmpretrain (for --arch)."""

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].mean((2, 3)))


def build_variant(model: str, arch: str, num_classes: int = 1000) -> nn.Module:
    """A backbone variant; for MambaVision with its official classifier when num_classes > 0."""
    import backbones  # noqa: F401  (registers the backbones)
    from mmengine.registry import MODELS
    if model not in MODEL_TYPES:
        raise ValueError(f'--model must be one of {list(MODEL_TYPES)}, got {model!r}')
    if model == 'mambavision' and num_classes > 0:
        backbone = MODELS.build(dict(type='MambaVision', arch=arch, out_indices=(3, ),
                                     final_norm=True))
        return _ClassifierView(backbone, backbone.dims[3], num_classes)
    return MODELS.build(dict(type=MODEL_TYPES[model], arch=arch))


def build_model_from_config(cfg) -> nn.Module:
    """``cfg.model`` built through the registry of the config's toolkit (its default_scope).

    Only that toolkit is imported: an mmpretrain config never imports mmdet, and so on.
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.utils import import_modules_from_strings
    if not isinstance(cfg, Config):
        cfg = Config.fromfile(str(cfg))
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    scope = cfg.get('default_scope')
    if scope:
        importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
        if DefaultScope.get_current_instance() is None or \
                DefaultScope.get_current_instance().scope_name != scope:
            init_default_scope(scope)
        registry = importlib.import_module(f'{scope}.registry').MODELS
    else:
        from mmengine.registry import MODELS as registry
    return registry.build(cfg.model)


# ----------------------------------------------------------------------------- command line
def _row(name: str, result: dict, paper: Optional[tuple]) -> str:
    p, f = result['params'] / 1e6, result['flops'] / 1e9
    f_noattn = (result['flops'] - result['attn_flops']) / 1e9
    ref = f'{paper[0]:>8.1f} {paper[1]:>8.1f}' if paper else f'{"-":>8} {"-":>8}'
    return (f'{name:<28} {p:>9.2f} {f:>9.3f} {f_noattn:>9.3f} {result["scan_flops"] / 1e9:>8.4f} '
            f'{ref}')


def _header() -> str:
    return (f'{"model":<28} {"params M":>9} {"GFLOPs":>9} {"w/o attn":>9} {"scan":>8} '
            f'{"paper M":>8} {"paper G":>8}')


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', help='an mmengine config whose `model` to count')
    parser.add_argument('--model', choices=sorted(MODEL_TYPES), help='a backbone family')
    parser.add_argument('--arch', default='T', help="variant, or 'all' (with --model)")
    parser.add_argument('--num-classes', type=int, default=1000,
                        help='MambaVision: add the official head for this many classes (0: none)')
    parser.add_argument('--shape', type=int, nargs='+', default=[224], help='S or H W')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    if (args.config is None) == (args.model is None):
        parser.error('give either a CONFIG or --model (with --arch)')
    try:
        return _measure(args)
    except (ValueError, KeyError, OSError, SyntaxError, ImportError) as err:
        # A user mistake (bad arch, shape or config file): one line, exit 2.
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if args.config and args.config not in why:
            why = f'config {args.config}: {why}'
        print(f'complexity: error: {why}', file=sys.stderr)
        sys.exit(2)


def _measure(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(args.threads)
    shape = _input_shape(args.shape)
    if args.config is not None:
        if not Path(args.config).is_file():
            raise FileNotFoundError(f'config {args.config}: no such file')
        try:
            model = build_model_from_config(args.config)
        except (KeyError, AttributeError) as err:
            raise ValueError(f'config {args.config}: no buildable `model` ({err})') from None
    at_paper_shape = shape[1:] == PAPER_SHAPE
    print(f'input {shape[0]}x{shape[1]}x{shape[2]}, batch 1; FLOPs = multiply-accumulates')
    print(_header())
    results = []
    if args.config:
        result = measure_complexity(model, shape)
        print(_row(Path(args.config).name, result, None))
        results.append(result)
        return results
    if args.arch.lower() == 'all':
        archs = [a for (m, a) in PAPER if m == args.model]
    else:
        archs = [args.arch]
    for arch in archs:
        model = build_variant(args.model, arch, args.num_classes)
        result = measure_complexity(model, shape)
        known = (at_paper_shape and args.num_classes == 1000)
        paper = PAPER.get((args.model, arch.upper())) if known else None
        print(_row(f'{args.model}-{arch}', result, paper))
        results.append(dict(result, arch=arch, paper=paper))
    return results


if __name__ == '__main__':
    main()
