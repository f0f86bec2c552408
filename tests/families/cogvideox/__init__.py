"""CogVideoX image-to-video: a family package kept outside the pack (see :mod:`.family`; its modules:
configs, components, family, spec, traces). It builds only on the contract, the toolkit and the errors,
and registers from its test."""

from tests.families.cogvideox.family import FAMILY

__all__ = ["FAMILY"]
