"""The tracker runs (TensorBoard, W&B, MLflow) a suite run streams to: opened by the runner before
the first attempt, kept in run.json, continued by every later attempt. The backends that log into
them inside the training process are ``engine.vis_backends``.
"""
