"""Option nodes: one per model family that has settings of its own, made from the family's spec.

Each builds an ``I2V_OPTIONS`` chain for I2VSample's optional ``options`` input, so settings only
some families have (Wan 2.2's second-expert guidance, flow shift, ...) never become widgets on
I2VSample. Nodes chain: each adds its set to the one it is given.
"""

from __future__ import annotations

from i2v_nodes.families import registry
from i2v_nodes.families.contract.family import Family
from i2v_nodes.nodes._common import CATEGORY, OPTIONS_TYPE, node_errors
from i2v_nodes.runtime.options import OptionSet, chain

CHAIN_TIP = (
    "Optional: another option node's output, to combine settings (e.g. a family's and speed settings)."
)


class FamilyOptions:
    """The shared body of the option nodes; :func:`option_nodes` makes one subclass per family."""

    family: Family
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (OPTIONS_TYPE,)
    RETURN_NAMES = ("options",)
    OUTPUT_TOOLTIPS = ("Settings for I2VSample's options input.",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": cls.family.spec.option_inputs,
            "optional": {"options": (OPTIONS_TYPE, {"tooltip": CHAIN_TIP})},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def build(self, options=None, unique_id=None, **values):
        node = type(self).__name__
        with node_errors(node, unique_id):
            settings = self.family.make_options(values)
            return (chain(options, OptionSet(self.family.name, node, settings)),)


def option_nodes() -> dict[str, type]:
    """Node class name -> class, for every registered family with options."""
    nodes = {}
    for family in registry.REGISTERED:
        if family.spec.options_node:
            description = (
                f"Settings only {family.title or family.name} models have, for I2VSample's optional "
                "options input. Each widget's default keeps the model's own value (its tooltip says "
                "which). Using them with a model of another family is an error, not silently ignored."
            )
            nodes[family.spec.options_node] = type(
                family.spec.options_node, (FamilyOptions,), {"family": family, "DESCRIPTION": description}
            )
    return nodes
