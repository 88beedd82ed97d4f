"""What runs inside the training process besides the model: mmengine hooks, loops, lr schedulers,
the sampler, transforms, vis backends, EMA/MESA/distillation, and the train and test entry points
(``python -m engine.trainer``, ``python -m engine.tester``). Models live in ``backbones/``.

Importing the package registers the components a recipe's config names that need nothing but
mmengine (``custom_imports=dict(imports=['backbones', 'engine'])``); the ones built on a toolkit
(``engine.mesa``, ``engine.distill``, ``engine.transforms`` on mmpretrain) and the trackers'
backends (``engine.vis_backends``) are imported by name where a config uses them.
"""
from . import distribute_bn, ema, lr_schedulers, samplers  # noqa: F401  (registers them)
