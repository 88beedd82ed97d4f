"""Build tests/fixtures/official_recipes.json from the two official checkouts.

    ./run_all.sh python tools/make_official_recipe_fixture.py MAMBAVISION MOBILEMAMBA [--out FILE]

MAMBAVISION: a copy of https://github.com/NVlabs/MambaVision; MOBILEMAMBA: a copy of
https://github.com/lewandofskee/MobileMamba. What the recipe tests (tests/test_official_recipes.py)
compare our full configs with, taken from the official files and from running official code here:

- ``mambavision.yaml``: each ``mambavision/configs/mambavision_*_1k.yaml`` as the official
  train.py reads it (its args), by variant;
- ``mobilemamba.config``: the values of each ``configs/mobilemamba/mobilemamba_*.py`` the official
  trainer reads (run as the trainer runs them);
- ``mobilemamba.in1k_no_decay``: the parameters the official ``optim.get_optim`` puts in its
  no-weight-decay group, run on the official S6 model (``trainable`` lists every trainable one);
- ``mobilemamba.downstream_no_decay``: per official downstream log (weights/downstream/*/*.log), the
  parameters mmengine logged with weight_decay 0;
- ``*.downstream_configs``: the optimizer, lr schedule, loop and batch of the official
  downstream configs, resolved by mmengine;
- ``mambavision.downstream_params``: the trainable parameters of the official downstream backbone
  (object_detection/tools/mamba_vision.py, ``MM_mamba_vision``) as the official T / S / B detection
  configs build it, when its imports (mmdet, mmseg, mamba_ssm) are available.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import runpy
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from runs.provenance import git_commit  # noqa: E402

DEFAULT_OUT = REPO / 'tests' / 'fixtures' / 'official_recipes.json'
MV_VARIANTS = dict(T='tiny', T2='tiny2', S='small', B='base', L='large', L2='large2')
MM_VARIANTS = ('t2', 't4', 's6', 'b1', 'b2', 'b4', 't2s', 't4s', 's6s', 'b1s', 'b2s', 'b4s')
MV_DET_CONFIGS = dict(T='tiny', S='small', B='base')


def _plain(value):
    """JSON-able: namespaces and tuples to dicts and lists, anything else to its repr."""
    if isinstance(value, types.SimpleNamespace) or type(value).__name__ == 'Namespace':
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def mambavision_yamls(checkout: Path) -> dict:
    import yaml
    out = {}
    for variant, stem in MV_VARIANTS.items():
        path = checkout / 'mambavision' / 'configs' / f'mambavision_{stem}_1k.yaml'
        out[variant] = yaml.safe_load(path.read_text())
    return out


def mambavision_downstream_params(checkout: Path) -> dict:
    """Trainable parameter names of the official downstream backbone per detection config."""
    sys.path.insert(0, str(checkout / 'object_detection' / 'tools'))
    try:
        from backbones.ops import mamba_shim
        mamba_shim.selective_scan_ref()  # imports mamba_ssm without its CUDA kernels
        official = importlib.import_module('mamba_vision')
    except ImportError as e:  # mmdet / mmseg / mamba_ssm missing: never write a fixture without
        raise SystemExit(f'make_official_recipe_fixture.py: error: the official downstream '
                         f'backbone does not import here ({e}); run it in the suite\'s '
                         f'environment (./run_all.sh python tools/make_official_recipe_fixture.py)')
    out = {}
    for variant, stem in MV_DET_CONFIGS.items():
        cfg_path = (checkout / 'object_detection' / 'configs' / 'mamba_vision' /
                    f'cascade_mask_rcnn_mamba_vision_{stem}_3x_coco.py')
        from mmengine.config import Config
        backbone = Config.fromfile(str(cfg_path)).model.backbone
        kwargs = {k: v for k, v in backbone.items() if k not in ('type', 'pretrained')}
        model = official.MM_mamba_vision(**kwargs)
        out[variant] = [n for n, p in model.named_parameters() if p.requires_grad]
    return out


def mobilemamba_configs(checkout: Path) -> dict:
    out = {}
    for variant in MM_VARIANTS:
        path = checkout / 'configs' / 'mobilemamba' / f'mobilemamba_{variant}.py'
        ns = runpy.run_path(str(path))
        out[variant] = {k: _plain(v) for k, v in ns.items()
                        if not k.startswith('_') and k in (
                            'size', 'epoch_full', 'warmup_epochs', 'test_start_epoch',
                            'batch_size', 'lr', 'weight_decay', 'data', 'optim', 'trainer',
                            'loss')}
    return out


def mobilemamba_in1k_no_decay(checkout: Path) -> dict:
    """Run the official get_optim's weight-decay split on the official S6 model."""
    sys.path.insert(0, str(checkout))
    try:
        importlib.import_module('fvcore.nn')
    except ImportError:  # imported by the official model file for FLOP counting only
        stub = types.ModuleType('fvcore.nn')
        for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count', 'parameter_count'):
            setattr(stub, name, None)
        sys.modules['fvcore'] = types.ModuleType('fvcore')
        sys.modules['fvcore.nn'] = stub
    mm = importlib.import_module('model.mobilemamba.mobilemamba')
    # The official optim/__init__.py imports optimizers of timm 0.9 that later timm lacks: run
    # its two weight-decay functions alone, as written there.
    import ast
    source = (checkout / 'optim' / '__init__.py').read_text()
    tree = ast.parse(source)
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and n.name in ('check_keywords_in_name', 'add_weight_decay')]
    optim = types.SimpleNamespace()
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(checkout / 'optim'), 'exec'),
         optim.__dict__)
    model = mm.MobileMamba_S6(num_classes=1000) if hasattr(mm, 'MobileMamba_S6') else None
    if model is None:
        raise SystemExit('the official module has no MobileMamba_S6')
    groups = optim.add_weight_decay(model, 0.05, getattr(model, 'no_weight_decay', lambda: ())(),
                                    ())
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = [names[id(p)] for g in groups if g['weight_decay'] == 0. for p in g['params']]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    return dict(no_decay=sorted(no_decay), trainable=sorted(trainable))


def mobilemamba_downstream_no_decay(checkout: Path) -> dict:
    out = {}
    for log in sorted((checkout / 'weights' / 'downstream').glob('*/*.log')):
        names = re.findall(r'paramwise_options -- (\S+):weight_decay=0\.0\s*$',
                           log.read_text(errors='replace'), flags=re.M)
        out[f'{log.parent.name}/{log.stem}'] = names
    return out


# The official downstream configs the recipe tests compare ours with, by their file in each repo.
DOWNSTREAM_CONFIGS = dict(
    mambavision={f'{task}_{v}': f'{folder}/mamba_vision/{stem.format(size)}'
                 for v, size in (('t', 'tiny'), ('s', 'small'), ('b', 'base'))
                 for task, folder, stem in (
                     ('cascade', 'object_detection/configs',
                      'cascade_mask_rcnn_mamba_vision_{}_3x_coco.py'),
                     ('upernet', 'semantic_segmentation/configs',
                      'mamba_vision_160k_ade20k-512x512_{}.py'))},
    mobilemamba=dict(
        maskrcnn='downstream/det/configs/mask_rcnn/mask-rcnn_mobilemamba_b1_fpn_1x_coco.py',
        retinanet='downstream/det/configs/retinanet/retinanet_mobilemamba_b1_fpn_1x_coco.py',
        fpn='downstream/seg/configs/sem_fpn/fpn_mobilemamba_b4-160k_ade20k-512x512.py',
        deeplabv3='downstream/seg/configs/deeplabv3/deeplabv3_mobilemamba_b4-80k_ade20k-512x512.py',
        pspnet='downstream/seg/configs/pspnet/pspnet_mobilemamba_b4-80k_ade20k-512x512.py'),
)


def downstream_configs(family: str, checkout: Path) -> dict:
    """The training recipe of each official downstream config, resolved by mmengine (its
    _base_ files included, its custom modules not imported)."""
    from mmengine.config import Config
    out = {}
    for name, rel in DOWNSTREAM_CONFIGS[family].items():
        cfg = Config.fromfile(str(checkout / rel), import_custom_modules=False)
        out[name] = _plain(dict(file=rel, optim_wrapper=cfg.optim_wrapper.to_dict(),
                                param_scheduler=[dict(s) for s in cfg.param_scheduler],
                                train_cfg=cfg.train_cfg.to_dict(),
                                batch_size=cfg.train_dataloader.batch_size))
    return out


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mambavision', type=Path, help='an official MambaVision checkout')
    parser.add_argument('mobilemamba', type=Path, help='an official MobileMamba checkout')
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    mv, mm = args.mambavision.resolve(), args.mobilemamba.resolve()
    for path, what in ((mv / 'mambavision' / 'train.py', 'MambaVision'),
                       (mm / 'trainer' / '_base_trainer.py', 'MobileMamba')):
        if not path.is_file():
            raise SystemExit(f'{path.parents[1]}: not a {what} checkout (no {path.name})')
    fixture = dict(
        mambavision=dict(source=dict(repo='NVlabs/MambaVision',
                                     commit=git_commit(mv, short=False) or 'unknown'),
                         yaml=mambavision_yamls(mv),
                         downstream_params=mambavision_downstream_params(mv),
                         downstream_configs=downstream_configs('mambavision', mv)),
        mobilemamba=dict(source=dict(repo='lewandofskee/MobileMamba',
                                     commit=git_commit(mm, short=False) or 'unknown'),
                         config=mobilemamba_configs(mm),
                         in1k_no_decay=mobilemamba_in1k_no_decay(mm),
                         downstream_no_decay=mobilemamba_downstream_no_decay(mm),
                         downstream_configs=downstream_configs('mobilemamba', mm)),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1, sort_keys=True) + '\n')
    print(f'wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)')
    return args.out


if __name__ == '__main__':
    main()
