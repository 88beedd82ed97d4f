"""What runs inside the training process besides the model: mmengine hooks, loops, lr schedulers,
the sampler, transforms, vis backends, EMA/MESA/distillation, and the train and test entry points
(``python -m engine.trainer``, ``python -m engine.tester``). Models live in ``backbones/``.

Importing the package imports nothing else: the run record and the job read ``engine.run_files``
without loading mmengine. A config names the modules whose components it uses in its
``custom_imports`` (``engine.lr_schedulers``, ``engine.samplers``, ``engine.ema``, ...).
"""
