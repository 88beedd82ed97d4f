"""Vision Mamba backbones for OpenMMLab, registered once in mmengine's root ``MODELS`` registry.

mmpretrain's, mmdet's and mmseg's registries fall back to the root one, so every config can say
``type='MambaVision'`` or ``type='MobileMamba'`` after ``custom_imports=dict(imports=['backbones'])``.
Importing it also makes mmengine read local checkpoint files with the safe loader of
``backbones.checkpoint_io``.
"""
from . import ops
from .checkpoint_io import install_mmengine_loader
from .mambavision import MambaVision, MambaVisionMixer
from .mobilemamba import MobileMamba

# Each family's name on the command line and its registered backbone type.
MODEL_TYPES = {'mambavision': 'MambaVision', 'mobilemamba': 'MobileMamba'}

# Every local checkpoint mmengine reads (resume, load_from, Pretrained init) goes through the
# suite's safe loader; every config imports this package, so no Runner reads one otherwise.
install_mmengine_loader()

__all__ = ['ops', 'MambaVision', 'MambaVisionMixer', 'MobileMamba', 'MODEL_TYPES']
