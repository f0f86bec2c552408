"""Stable Video Diffusion's tier workflows, as data: SVD-XT 1.1 (25 frames) where it fits, else SVD."""

from __future__ import annotations

from i2v_nodes.families.contract.tiers import TierRun, Tiers
from i2v_nodes.families.svd.spec import OPTION_INPUTS, RULES

REMARKS = (
    "Stable Video Diffusion: the image alone drives the video (the prompts are ignored, and I2VSample's "
    "report says so); guidance ramps from SVDOptions' min_guidance_scale on the first frame to "
    "I2VSample's guidance_scale on the last, and target_fps is its fps conditioning. SVDOptions sets the "
    "motion bucket (more or less motion) and the noise augmentation (more motion, less likeness); every "
    "-1 keeps the model's own. fp16 with an fp32 VAE; a decode that overflows is retried in fp32."
)

TIERS = Tiers(
    prefix="svd",
    label="SVD",
    runs=(TierRun("stabilityai/stable-video-diffusion-img2vid-xt-1-1", 1024, 576, 25),
          TierRun("stabilityai/stable-video-diffusion-img2vid", 1024, 576, 14)),
    remarks={variant: REMARKS for variant in RULES},
    options={variant: {name: -1 for name in OPTION_INPUTS} for variant in RULES},
)
