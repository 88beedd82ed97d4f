"""Numerical kernels shared by the backbones; they know nothing of any model."""
