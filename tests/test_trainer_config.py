"""The trainer's config formats its text once per content (engine.trainer.TextOnceConfig): the
checkpoints' meta holds the same text as mmengine's own Config gives, and a changed config is
formatted anew."""
from __future__ import annotations

import copy

import mmengine.config.config as mmengine_config
from mmengine.config import Config

from engine.trainer import TextOnceConfig


def _config() -> Config:
    return Config(dict(model=dict(type='ImageClassifier', backbone=dict(depth=3)),
                       work_dir='/runs/a', default_scope='mmpretrain'))


def test_the_text_is_mmengines_and_formatted_once_per_content(monkeypatch):
    formatted = []
    real = mmengine_config.FormatCode
    monkeypatch.setattr(mmengine_config, 'FormatCode',
                        lambda *a, **k: formatted.append(1) or real(*a, **k))
    text, once = _config().pretty_text, TextOnceConfig.of(_config())
    assert once.pretty_text == text
    assert len(formatted) == 2  # one each
    copied = copy.deepcopy(once)  # what Runner.from_cfg and Runner.__init__ do
    assert type(copied) is TextOnceConfig
    assert copied.pretty_text == once.pretty_text == text
    assert len(formatted) == 2  # neither formatted again
    copied.model.backbone.depth = 4
    assert 'depth=4' in copied.pretty_text and 'depth=3' in once.pretty_text
    assert len(formatted) == 3
