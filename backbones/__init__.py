"""Vision Mamba backbones for OpenMMLab, registered once in mmengine's root ``MODELS`` registry.

mmpretrain's, mmdet's and mmseg's registries fall back to the root one, so every config can say
``type='MambaVision'`` after ``custom_imports=dict(imports=['backbones'])``.
"""
from . import ops
from .mambavision import MambaVision, MambaVisionMixer

__all__ = ['ops', 'MambaVision', 'MambaVisionMixer']
