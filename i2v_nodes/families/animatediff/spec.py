"""What AnimateDiff image-to-video (PIA) is, as data: its rules and roles, its options node's widgets,
and flags."""

from __future__ import annotations

from dataclasses import dataclass

from i2v_nodes.families.animatediff.configs import PIA, PUBLISHED, TINY
from i2v_nodes.families.contract.spec import FamilySpec, Roles, Rules

RULES = Rules(
    size_multiple=8,  # the UNet forwards odd upsample sizes and the motion modules are per pixel: 8 is enough
    vae_spatial=8,
    vae_temporal=1,
    latent_channels=4,
    frame_step=1,
    min_frames=2,
    max_frames=32,  # the motion modules' positional encoding (motion_max_seq_length)
    trained_frames=16,
    default_width=512,
    default_height=512,
    default_frames=16,
    default_fps=8,
    default_steps=25,  # PIA's own sampling settings
    default_guidance=7.5,
    default_precision="fp16",
    default_negative="wrong white balance, dark, sketches, worst quality, low quality",
)
ROLES = Roles(denoisers=("unet",), encoders=("text_encoder",))
ADAPTER = "motion_adapter"  # the pipeline component (and folder) of the motion adapter
IMAGE_CHANNELS = 9  # PIA's UNet input: noisy latents 4 + mask 1 + image latents 4
MOTION_PRESETS = 8  # motion_scale 0-2: more motion, 3-5: looping, 6-8: with style transfer


@dataclass(frozen=True)
class AnimateDiffSettings:
    """What the AnimateDiffOptions node sets; -1 means "the model's own value" (see :data:`OWN`)."""

    strength: float = -1.0
    motion_scale: int = -1


OWN = AnimateDiffSettings(strength=1.0, motion_scale=0)  # the stock pipeline's defaults

_OWN_TEXT = " -1 = the model's own ({})."
OPTION_INPUTS = {
    "strength": ("FLOAT", {
        "default": -1.0, "min": -1.0, "max": 1.0, "step": 0.01,
        "tooltip": "How far the video may move from the image: 1 starts from pure noise; lower "
                   "starts from the image's latents with noise added and runs only that share of the "
                   "steps (stiller, closer to the image)." + _OWN_TEXT.format(OWN.strength)}),
    "motion_scale": ("INT", {
        "default": -1, "min": -1, "max": MOTION_PRESETS,
        "tooltip": "PIA's motion presets: 0-2 more and more motion, 3-5 looping motion (the last "
                   "frame returns to the first), 6-8 motion with style transfer."
                   + _OWN_TEXT.format(OWN.motion_scale)}),
}

SPEC = FamilySpec(
    name="animatediff",
    title="AnimateDiff",
    long_title="AnimateDiff (PIA)",
    pipeline_classes=("PIAPipeline",),
    rules={PIA: RULES},
    roles={PIA: ROLES},
    hub_variants={hub_id: PIA for hub_id in PUBLISHED},
    published=PUBLISHED,
    tiny=TINY,
    options_node="AnimateDiffOptions",
    option_inputs=OPTION_INPUTS,
    cfg_in_one_call=True,  # one UNet call per step holds both CFG halves, unconditional rows first
    samplers={PIA: ("euler", "unipc", "dpmpp_2m")},  # as I2VGen-XL: DDIM's betas, no LCM distillation
    # fit_image stays on: the pipeline encodes the image at its own size and stretches the latents
)
