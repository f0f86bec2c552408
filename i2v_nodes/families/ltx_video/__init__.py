"""LTX-Video 0.9.x image-to-video: one family package (see :mod:`.family`; its modules: configs,
family, files, load, write)."""

from i2v_nodes.families.ltx_video.family import FAMILY

__all__ = ["FAMILY"]
