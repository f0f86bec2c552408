"""What I2VGen-XL is, as data: its rules, roles and flags."""

from __future__ import annotations

from i2v_nodes.families.contract.spec import FamilySpec, Roles, Rules
from i2v_nodes.families.i2vgen_xl.configs import PUBLISHED_CONFIGS, TINY_CONFIGS

VARIANT = "i2vgen-xl"
HUB_ID = "ali-vilab/i2vgen-xl"

RULES = Rules(
    size_multiple=8,
    vae_spatial=8,
    vae_temporal=1,
    latent_channels=4,
    frame_step=1,
    min_frames=2,
    max_frames=128,
    trained_frames=16,
    default_width=1280,
    default_height=704,
    default_frames=16,
    default_fps=16,
    default_steps=50,
    default_guidance=9.0,
    default_precision="fp16",
    default_negative="Distorted, discontinuous, ugly, blurry, low resolution, motionless, static",
)
ROLES = Roles(denoisers=("unet",), encoders=("text_encoder", "image_encoder"))

SPEC = FamilySpec(
    name="i2vgen-xl",
    title="I2VGen-XL",
    long_title="I2VGen-XL",
    pipeline_classes=("I2VGenXLPipeline",),
    rules={VARIANT: RULES},
    roles={VARIANT: ROLES},
    hub_variants={HUB_ID: VARIANT},
    published=PUBLISHED_CONFIGS,
    tiny={"tiny-i2vgen-xl": TINY_CONFIGS},
    fit_image=False,  # the pipeline centre-crops the image to the size itself
    uses_step_callback=False,  # no callback_on_step_end: progress and cancel through a UNet hook
    cfg_in_one_call=True,  # one UNet call per step holds both CFG halves, unconditional rows first
    # DDIM's own discrete-time schedule: any multistep or Euler solver of the same betas steps it (no
    # LCM: the weights are not consistency-distilled, and LCMScheduler gives NaNs on them)
    samplers={VARIANT: ("euler", "unipc", "dpmpp_2m")},
)
