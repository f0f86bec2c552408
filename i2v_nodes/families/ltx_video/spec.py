"""What LTX-Video is, as data: its three variants' rules, its roles, its options node's widgets, and
flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from i2v_nodes.families.contract.spec import FamilySpec, Keyframes, Roles, Rules
from i2v_nodes.families.ltx_video.configs import DEV, DISTILLED, LEGACY, PUBLISHED, TINY, VARIANT_OF_HUB

# Lightricks' negative prompt in diffusers' LTX-Video examples.
NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"
# The timesteps the distilled releases were distilled for (diffusers' LTX-Video docs), used at 8 steps.
DISTILLED_TIMESTEPS = (1000, 993, 987, 981, 975, 909, 725, 0.03)

_DEV_RULES = Rules(
    size_multiple=32,
    vae_spatial=32,
    vae_temporal=8,
    latent_channels=128,
    frame_step=8,
    min_frames=9,
    max_frames=513,
    trained_frames=257,
    default_width=768,
    default_height=512,
    default_frames=121,
    default_fps=24,
    default_steps=40,
    default_guidance=3.0,
    default_precision="bf16",
    default_negative=NEGATIVE,
    chunked_decode=False,
)
RULES = {  # the main variant first: lists of the families' rules name it by the family's title
    DEV: _DEV_RULES,
    DISTILLED: dataclasses.replace(_DEV_RULES, default_steps=len(DISTILLED_TIMESTEPS), default_guidance=1.0),
    LEGACY: dataclasses.replace(_DEV_RULES, default_steps=50),
}
ROLES = Roles(denoisers=("transformer",), encoders=("text_encoder",))
CONDITION = "LTXConditionPipeline"
TEXT_TOKENS = {LEGACY: 128, DEV: 256, DISTILLED: 256}  # each pipeline's default max_sequence_length


@dataclass(frozen=True)
class LTXVideoSettings:
    """What the LTXVideoOptions node sets; -1 means "the model's own value" (see ``_own``)."""

    decode_timestep: float = -1.0
    decode_noise_scale: float = -1.0
    guidance_rescale: float = -1.0
    image_noise_scale: float = -1.0
    image_strength: float = -1.0


# The releases' own values (diffusers' LTX-Video docs: decode at timestep 0.05 with noise 0.025 on the
# timestep-aware VAEs; the distilled releases without image noise, with guidance rescale 0.7).
OWN = {
    LEGACY: LTXVideoSettings(0.05, 0.025, 0.0, 0.0, 1.0),
    DEV: LTXVideoSettings(0.05, 0.025, 0.0, 0.15, 1.0),
    DISTILLED: LTXVideoSettings(0.05, 0.025, 0.7, 0.0, 1.0),
}
CONDITION_ONLY = ("image_noise_scale", "image_strength")  # LTXImageToVideoPipeline has neither


def _number(tooltip: str, high: float = 1.0) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": -1.0, "min": -1.0, "max": high, "step": 0.005,
                      "tooltip": tooltip + " -1 = the model's own."})


OPTION_INPUTS = {
    "decode_timestep": _number(
        "The timestep the VAE decodes at (timestep-aware VAEs, 0.9.1 and later): the VAE finishes "
        "the last bit of denoising. Lightricks use 0.05."),
    "decode_noise_scale": _number(
        "How much fresh noise is mixed into the latents before that decode (0.025 in Lightricks' "
        "examples). Higher can add fine texture, too high makes it grainy."),
    "guidance_rescale": _number(
        "Rescales the guided prediction towards the conditional one (0.7 in Lightricks' examples; "
        "0 = off). Counters the over-saturation strong guidance gives. Only acts with guidance "
        "above 1."),
    "image_noise_scale": _number(
        "0.9.5 and later: noise added to the input image's latents at each step (0.15 for the "
        "dev releases, 0 for the distilled ones). More lets the video move away from the image."),
    "image_strength": _number(
        "0.9.5 and later: how strongly the first frame is held to the input image (1 = exactly, "
        "lower lets the model change it)."),
}

SPEC = FamilySpec(
    name="ltx-video",
    title="LTX-Video",
    long_title="LTX-Video",
    pipeline_classes=("LTXPipeline", "LTXImageToVideoPipeline", CONDITION),
    rules=RULES,
    roles={variant: ROLES for variant in RULES},
    variant_titles={DEV: "LTX-Video 0.9.5+", DISTILLED: "distilled LTX-Video", LEGACY: "LTX-Video 0.9.1"},
    hub_variants=VARIANT_OF_HUB,
    published=PUBLISHED,
    tiny=TINY,
    options_node="LTXVideoOptions",
    option_inputs=OPTION_INPUTS,
    cfg_in_one_call=True,  # [unconditional, conditional] rows in one transformer call
    step_caches=("first_block", "taylorseer", "magcache", "fastercache"),
    compile_blocks=True,
    attention_backends=True,
    # LTXConditionPipeline (0.9.5 and later) steps FlowMatchEuler with per-token timesteps, which no other
    # scheduler takes; LTXImageToVideoPipeline (0.9.1) hands custom sigmas and a shift (mu), which
    # UniPC and FlowMatchLCM take and DPM-Solver does not
    samplers={DEV: ("euler",), DISTILLED: ("euler",), LEGACY: ("euler", "unipc", "lcm")},
    # LTXConditionPipeline (0.9.5 and later) takes images at any frame, each one more latent frame of
    # tokens; LTXImageToVideoPipeline (0.9.1) the first frame only
    keyframes={variant: Keyframes(any_frame=True, appended_frames=1) for variant in (DEV, DISTILLED)},
)
