"""Stable Video Diffusion: one family package (see :mod:`.family`; its modules: configs, family)."""

from i2v_nodes.families.svd.family import FAMILY

__all__ = ["FAMILY"]
