"""The pinned stack imports and works on CPU: the toolkits' own stock models train one step."""
import importlib
import os
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import torch
from conftest import PINS_FILE, REPO, read_pins

# requirements/pins.txt is the one list of versions: read, never re-typed here.
PINS = read_pins()
# Import names where they differ from the distribution's name (``-`` read as ``_`` otherwise).
IMPORT_NAMES = {'opencv-python': 'cv2', 'PyWavelets': 'pywt', 'mmsegmentation': 'mmseg',
                'mambavision': 'mambavision.models.mamba_vision'}


def test_pins_are_read_as_setup_env_reads_them():
    """Our reading of pins.txt is tools/setup_env.sh's own (its pin() function: build-only lines
    left out), for every pinned name, and it is not empty or partial."""
    script = (REPO / 'tools' / 'setup_env.sh').read_text()
    pin_fn = '\n'.join(line for line in script.splitlines()
                       if line.startswith(('pin() {', 'env_pins() {')))
    names = ' '.join(PINS)
    out = subprocess.run(['bash', '-c', f'pins={PINS_FILE}; {pin_fn}\n'
                          f'for n in {names}; do echo "$n $(pin "$n")"; done'],
                         capture_output=True, text=True, check=True).stdout
    assert dict(line.split(' ', 1) for line in out.splitlines()) == PINS
    assert {'torch', 'mmcv', 'mambavision', 'timm', 'PyWavelets', 'scipy'} <= set(PINS)
    environment = PINS_FILE.read_text().split('\n# --- optional')[0]
    assert len(PINS) == sum(1 for line in environment.splitlines()
                            if '==' in line.split('#')[0] and 'build-only' not in line)
    assert 'wandb' not in PINS  # optional: installed by --vis on first use, not by set-up


def test_suite_cache_dir_places_the_environment_under_it(tmp_path):
    """docs/setup.md: SUITE_CACHE_DIR is where environments are cached (default
    ${XDG_CACHE_HOME:-~/.cache}/mamba-ablation-suite), under envs/<key>. Without a 12-minute
    build: tools/setup_env.sh --print-path says where the python is (and builds nothing), and
    an environment stamped complete at that place is the one the script itself hands out."""
    script = REPO / 'tools' / 'setup_env.sh'
    home, xdg, cache = tmp_path / 'home', tmp_path / 'xdg', tmp_path / 'cache'
    base = {k: v for k, v in os.environ.items()
            if k not in ('SUITE_CACHE_DIR', 'XDG_CACHE_HOME', 'SUITE_PYTHON')}

    def setup(*args: str, **env: Path) -> subprocess.CompletedProcess:
        return subprocess.run(['bash', str(script), *args], capture_output=True, text=True,
                              env=dict(base, HOME=str(home), **{k: str(v) for k, v in
                                                                env.items()}), timeout=60)

    printed = setup('--print-path', SUITE_CACHE_DIR=cache)
    assert printed.returncode == 0, printed.stderr
    python = Path(printed.stdout.strip())
    key = python.parent.parent.name
    assert re.fullmatch(r'[0-9a-f]{12}', key), python
    assert python == cache / 'envs' / key / 'bin' / 'python'
    assert not cache.exists() and not home.exists()  # nothing built, nothing written
    # the same environment in the defaults' places, and SUITE_CACHE_DIR before them
    where = {'XDG_CACHE_HOME': xdg / 'mamba-ablation-suite', 'HOME': home / '.cache' /
             'mamba-ablation-suite'}
    assert setup('--print-path', XDG_CACHE_HOME=xdg).stdout.strip() == \
        str(where['XDG_CACHE_HOME'] / 'envs' / key / 'bin' / 'python')
    assert setup('--print-path').stdout.strip() == \
        str(where['HOME'] / 'envs' / key / 'bin' / 'python')
    assert setup('--print-path', SUITE_CACHE_DIR=cache, XDG_CACHE_HOME=xdg).stdout.strip() == \
        str(python)
    # The build's own path: an environment stamped complete under SUITE_CACHE_DIR is handed
    # out as it is, the script creating nothing beside it.
    (cache / 'envs' / key).mkdir(parents=True)
    (cache / 'envs' / key / '.complete').touch()
    used = setup(SUITE_CACHE_DIR=cache, XDG_CACHE_HOME=xdg)
    assert (used.returncode, used.stdout.strip()) == (0, str(python)), used.stderr
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob('*')) == \
        ['envs', f'envs/{key}', f'envs/{key}/.complete']
    assert not xdg.exists() and not home.exists()


@pytest.mark.parametrize('dist', sorted(PINS))
def test_pinned_versions(dist):
    """Every runtime pin is installed at its version and imports (an installed distribution
    hidden or broken at import time fails too)."""
    try:
        found = version(dist).split('+')[0]
    except PackageNotFoundError:
        pytest.fail(f'{dist} is not installed; pins.txt pins {dist}=={PINS[dist]}: build the '
                    'environment with ./run_all.sh setup (tools/setup_env.sh)', pytrace=False)
    assert found == PINS[dist], f'{dist} {found} is not the pinned {PINS[dist]}'
    if dist in ('mamba-ssm', 'mambavision'):
        # mamba-ssm imports only through our shim on a machine without its CUDA module.
        from backbones.ops import mamba_shim
        mamba_shim.selective_scan_ref()
    if dist != 'mamba-ssm':
        importlib.import_module(IMPORT_NAMES.get(dist, dist.replace('-', '_')))


def test_mmcv_ops_run_on_cpu():
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.randn(1, 4, 16, 16, requires_grad=True)
    rois = torch.tensor([[0, 2.0, 2.0, 10.0, 10.0]])
    out = RoIAlign((3, 3), spatial_scale=1.0, sampling_ratio=2)(feats, rois)
    out.sum().backward()
    assert out.shape == (1, 4, 3, 3) and feats.grad.abs().sum() > 0


def test_mamba_ssm_reference_scan_through_shim():
    from backbones.ops import mamba_shim
    assert mamba_shim.mamba_ssm_version() == '2.3.2.post1'
    scan = mamba_shim.selective_scan_ref()
    u = torch.randn(2, 4, 7, requires_grad=True)
    out = scan(u, torch.rand(2, 4, 7), -torch.rand(4, 3), torch.randn(2, 3, 7),
               torch.randn(2, 3, 7), torch.ones(4))
    out.sum().backward()
    assert out.shape == (2, 4, 7) and torch.isfinite(u.grad).all()
    if not torch.cuda.is_available():
        assert mamba_shim.selective_scan_cuda_fn() is None


def _train_step(model, data):
    """One real forward (loss mode) and backward through the model's own data preprocessor."""
    model.train()
    batch = model.data_preprocessor(data, training=True)
    losses = model(**batch, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(total) and grads
    return losses


@pytest.mark.slow
def test_stock_mmdet_mask_rcnn_trains_on_cpu():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmdet.utils import register_all_modules
    from mmengine.hub import get_config
    from mmengine.structures import InstanceData
    register_all_modules()
    cfg = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None  # no download: random weights suffice here
    model = MODELS.build(cfg.model)
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                         pad_shape=(128, 128), scale_factor=(1.0, 1.0)))
    masks = torch.zeros(1, 128, 128, dtype=torch.uint8)
    masks[0, 20:80, 30:90] = 1
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[30.0, 20.0, 90.0, 80.0]]),
                                       labels=torch.tensor([3]),
                                       masks=BitmapMasks(masks.numpy(), 128, 128))
    losses = _train_step(model, dict(inputs=[torch.randint(0, 255, (3, 128, 128),
                                                            dtype=torch.uint8)],
                                     data_samples=[sample]))
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} <= set(losses)


def test_stock_mmseg_upernet_trains_on_cpu():
    from mmengine.hub import get_config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = get_config('mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py')
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.size = (64, 64)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # SyncBN needs a process group
    sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         pad_shape=(64, 64)))
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 64, 64)))
    losses = _train_step(model, dict(inputs=[torch.randint(0, 255, (3, 64, 64),
                                                            dtype=torch.uint8)] * 2,
                                     data_samples=[sample, sample]))
    assert 'decode.loss_ce' in losses and 'aux.loss_ce' in losses


def test_stock_mmpretrain_classifier_trains_on_cpu():
    from mmengine.hub import get_config
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules
    register_all_modules()
    cfg = get_config('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    model = MODELS.build(cfg.model)
    samples = [DataSample().set_gt_label(3), DataSample().set_gt_label(7)]
    losses = _train_step(model, dict(inputs=[torch.randint(0, 255, (3, 64, 64),
                                                            dtype=torch.uint8)] * 2,
                                     data_samples=samples))
    assert 'loss' in losses
