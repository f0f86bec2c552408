"""I2VSpeedOptions: speed settings that work across families, where a family supports them.

One optional node for the speed levers, chained with the family option nodes into I2VSample's
``options``. Each setting says which families take it; elsewhere it is refused, never ignored.
"""

from __future__ import annotations

from i2v_nodes.families import registry
from i2v_nodes.nodes import family_prose
from i2v_nodes.nodes._common import CATEGORY, OPTIONS_TYPE, node_errors
from i2v_nodes.nodes.family_options import CHAIN_TIP
from i2v_nodes.runtime.options import SPEED, OptionSet, chain
from i2v_nodes.runtime.speed.settings import ATTENTION_BACKENDS, COMPILE_MODES, STEP_CACHES, SpeedSettings

TIPS = {
    "cache_threshold": (
        "first_block and magcache: how much change still counts as 'the same' (higher: more skipped steps, "
        "faster, less faithful). 0 = the method's own (first_block 0.05, magcache 0.06)."
    ),
    "cache_interval": (
        "taylorseer: steps between full computes (0 = 4). magcache: the most steps skipped in a row "
        "(0 = 3). fastercache: attention computed every this many steps (0 = 2)."
    ),
    "cache_start": (
        "Share of the steps always computed before caching starts (taylorseer: 0 = 0.1, magcache: 0 = 0.2). "
        "The first steps shape the layout and matter most."
    ),
}


def family_tips() -> dict[str, str]:
    """The tooltips that name the families a setting works on, made from the registry when the node is
    described (a family registered later shows up too)."""
    caches = "; ".join(f"{family.title}: {', '.join(family.spec.step_caches)}"
                       for family in registry.REGISTERED if family.spec.step_caches)
    return {
        "guidance_until": (
            "CFG truncation: run classifier-free guidance only for this share of the steps, then skip the "
            "unconditional pass (about half the denoiser work of each remaining step). Guidance matters "
            "most early, when the layout and motion form; 0.5-0.8 keeps most of its effect. 1 = guidance "
            f"in every step (off). {family_prose.titles(lambda f: f.spec.cfg_truncation)} only; other "
            "families refuse a value below 1."
        ),
        "step_cache": (
            "Reuse work across steps (diffusers' cache hooks on the transformer's blocks). first_block: the "
            "first block's change decides whether the rest run (cache_threshold). taylorseer: full steps "
            "every cache_interval steps, the ones between predicted by a Taylor series. magcache: skips "
            "while the blocks' predicted change stays under cache_threshold; its first run with a model "
            "measures that model (no skipping), later runs skip. fastercache: reuses attention outputs. "
            f"{caches}. Skipping 40-70% of the block work costs some detail: check against off. In a "
            "batch, the clips share one skip decision."
        ),
        "compile": (
            "blocks: torch.compile the transformer's repeated blocks "
            f"({family_prose.titles(lambda f: f.spec.compile_blocks)}). The first run compiles (tens of "
            "seconds to minutes, needs a C compiler on CPU and Triton on GPU); later runs with the same size "
            "reuse it. If compiling fails the run goes on uncompiled and the report says so."
        ),
        "attention": (
            f"The attention kernel ({family_prose.titles(lambda f: f.spec.attention_backends)}). sdpa is "
            "PyTorch's own and always works; flash_attn, flash_attn_3, sage and xformers need their package "
            "and a CUDA GPU. One that is missing falls back to sdpa, and the report says why."
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
        tip = {**TIPS, **family_tips()}
        return {
            "required": {
                "guidance_until": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 1.0, "step": 0.05,
                                             "tooltip": tip["guidance_until"]}),
            },
            "optional": {
                "step_cache": (list(STEP_CACHES), {"default": "off", "tooltip": tip["step_cache"]}),
                "cache_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01,
                                              "tooltip": tip["cache_threshold"]}),
                "cache_interval": ("INT", {"default": 0, "min": 0, "max": 20,
                                           "tooltip": tip["cache_interval"]}),
                "cache_start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.9, "step": 0.05,
                                          "tooltip": tip["cache_start"]}),
                "compile": (list(COMPILE_MODES), {"default": "off", "tooltip": tip["compile"]}),
                "attention": (list(ATTENTION_BACKENDS), {"default": "sdpa", "tooltip": tip["attention"]}),
                "options": (OPTIONS_TYPE, {"tooltip": CHAIN_TIP}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def build(self, guidance_until=1.0, step_cache="off", cache_threshold=0.0, cache_interval=0,
              cache_start=0.0, compile="off", attention="sdpa", options=None, unique_id=None):
        with node_errors(type(self).__name__, unique_id):
            # checked against the model in I2VSample, which names the input that is wrong
            settings = SpeedSettings(guidance_until=float(guidance_until), step_cache=step_cache,
                                     cache_threshold=cache_threshold, cache_interval=cache_interval,
                                     cache_start=cache_start, compile=compile, attention=attention)
            return (chain(options, OptionSet(SPEED, type(self).__name__, settings)),)
