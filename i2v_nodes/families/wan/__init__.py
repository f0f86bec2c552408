"""Wan 2.1 / 2.2 image-to-video: one family package (see :mod:`.family`; its modules: configs, family,
files, keys, load, stand_ins, write)."""

from i2v_nodes.families.wan.family import FAMILY

__all__ = ["FAMILY"]
