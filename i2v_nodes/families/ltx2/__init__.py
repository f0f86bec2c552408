"""LTX-2 image-to-video with sound: one family package (see :mod:`.family`; its modules: configs,
family, files, load, write)."""

from i2v_nodes.families.ltx2.family import FAMILY

__all__ = ["FAMILY"]
