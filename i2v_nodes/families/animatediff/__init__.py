"""AnimateDiff image-to-video (PIA): one family package (see :mod:`.family`; its modules: configs,
family, files, load, write)."""

from i2v_nodes.families.animatediff.family import FAMILY

__all__ = ["FAMILY"]
