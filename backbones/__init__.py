"""Vision Mamba backbones for OpenMMLab (filled in by the backbone commits)."""
