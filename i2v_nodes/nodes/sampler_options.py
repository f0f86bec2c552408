"""I2VSamplerOptions: the sampler (the diffusers scheduler that steps the denoising), for one run.

Chained with the other option nodes into I2VSample's ``options``. Each family says which samplers its
stock pipeline runs; another one is refused before any work, naming the ones it runs.
"""

from __future__ import annotations

from i2v_nodes.errors import InputError
from i2v_nodes.nodes import family_prose
from i2v_nodes.nodes._common import CATEGORY, OPTIONS_TYPE, node_errors
from i2v_nodes.nodes.family_options import CHAIN_TIP
from i2v_nodes.runtime.options import SAMPLER, OptionSet, SamplerSettings, chain
from i2v_nodes.runtime.sampling.samplers import CHOICES

WHAT = (
    "default: the model's own scheduler. euler: Euler (FlowMatchEulerDiscreteScheduler on flow models, "
    "EulerDiscreteScheduler on UNet models). unipc: UniPC, second order. dpmpp_2m: DPM-Solver++ 2M "
    "(its EDM form on continuous-time models). lcm: FlowMatchLCMScheduler, for step-distilled flow "
    "models at few steps; it adds fresh noise each step, drawn from the seed. Each keeps the model's own "
    "schedule settings (a flow model's shift; a family option node's flow shift still applies). One "
    "model call per step for every sampler, so none changes the time per step or the memory."
)


def sampler_tip() -> str:
    """The sampler widget's tooltip, with what each family runs (made from the registry when the node
    is described, so a family registered later shows up too)."""
    runs = family_prose.per_variant(lambda family, variant: family.samplers(variant)[1:],
                                    lambda names: ", ".join(names) or "its own only")
    return f"{WHAT} Besides default, each model runs: {runs}."


class I2VSamplerOptions:
    DESCRIPTION = (
        "The sampler for I2VSample's optional options input, chainable with the other option nodes: the "
        "model's own scheduler (default) or a named diffusers scheduler the model's pipeline can step. "
        "It is set for one run and the model's own is put back after, also when the run fails or is "
        "cancelled. A sampler the model cannot run is refused, naming the ones it can."
    )
    CATEGORY = CATEGORY
    FUNCTION = "build"
    RETURN_TYPES = (OPTIONS_TYPE,)
    RETURN_NAMES = ("options",)
    OUTPUT_TOOLTIPS = ("Settings for I2VSample's options input.",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {"sampler": (list(CHOICES), {"default": "default", "tooltip": sampler_tip()})},
            "optional": {"options": (OPTIONS_TYPE, {"tooltip": CHAIN_TIP})},
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def build(self, sampler="default", options=None, unique_id=None):
        node = type(self).__name__
        with node_errors(node, unique_id):
            if sampler not in CHOICES:  # ComfyUI checks its combos; a direct call or a stale workflow may not
                raise InputError("sampler", f"unknown sampler {sampler!r}; the samplers are: "
                                            f"{', '.join(CHOICES)}")
            return (chain(options, OptionSet(SAMPLER, node, SamplerSettings(sampler))),)
