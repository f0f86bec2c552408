"""I2VSpeedOptions: speed settings that work across families, where a family supports them.

One optional node for the speed levers, chained with the family option nodes into I2VSample's
``options``. Each setting says which families take it; elsewhere it is refused, never ignored.
"""

from __future__ import annotations

from ..runtime.options import SPEED, OptionSet, SpeedSettings, chain
from ._common import CATEGORY, OPTIONS_TYPE, node_errors
from .family_options import CHAIN_TIP

TIPS = {
    "guidance_until": (
        "CFG truncation: run classifier-free guidance only for this share of the steps, then skip the "
        "unconditional pass (about half the denoiser work of each remaining step). Guidance matters most "
        "early, when the layout and motion form; 0.5-0.8 keeps most of its effect. 1 = guidance in every "
        "step (off). Wan only for now; other families refuse a value below 1."
    ),
}


class I2VSpeedOptions:
    DESCRIPTION = (
        "Speed settings for I2VSample's optional options input, chainable with the family option nodes. "
        "Each setting names the families that can use it; on another family it is refused with a clear "
        "error, not silently ignored."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (OPTIONS_TYPE,)
    RETURN_NAMES = ("options",)
    OUTPUT_TOOLTIPS = ("Settings for I2VSample's options input.",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "guidance_until": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 1.0, "step": 0.05,
                                             "tooltip": TIPS["guidance_until"]}),
            },
            "optional": {"options": (OPTIONS_TYPE, {"tooltip": CHAIN_TIP})},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def build(self, guidance_until=1.0, options=None, unique_id=None):
        with node_errors(type(self).__name__, unique_id):
            settings = SpeedSettings(guidance_until=float(guidance_until))
            return (chain(options, OptionSet(SPEED, type(self).__name__, settings)),)
