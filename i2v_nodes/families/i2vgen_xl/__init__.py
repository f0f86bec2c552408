"""I2VGen-XL: one family package (see :mod:`.family`; its modules: family)."""

from i2v_nodes.families.i2vgen_xl.family import FAMILY

__all__ = ["FAMILY"]
