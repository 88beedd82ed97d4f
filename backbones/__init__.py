"""Vision Mamba backbones for OpenMMLab, registered once in mmengine's root ``MODELS`` registry.

mmpretrain's, mmdet's and mmseg's registries fall back to the root one, so every config can say
``type='MambaVision'`` or ``type='MobileMamba'`` after ``custom_imports=dict(imports=['backbones'])``.
"""
from . import ops, training  # training: the official lr schedule and step-aligned sampler
from .mambavision import MambaVision, MambaVisionMixer
from .mobilemamba import MobileMamba

# Each family's name on the command line and its registered backbone type.
MODEL_TYPES = {'mambavision': 'MambaVision', 'mobilemamba': 'MobileMamba'}

__all__ = ['ops', 'training', 'MambaVision', 'MambaVisionMixer', 'MobileMamba', 'MODEL_TYPES']
