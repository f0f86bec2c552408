"""What Stable Video Diffusion is, as data: its two variants' rules, its roles, its options node's
widgets, and flags (no prompt, no tiled VAE)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from i2v_nodes.families.contract.spec import FamilySpec, Roles, Rules
from i2v_nodes.families.svd.configs import PUBLISHED, SVD, SVD_XT, TINY, VARIANT_OF_HUB, XT_FRAMES

_SVD_RULES = Rules(
    size_multiple=8,
    vae_spatial=8,
    vae_temporal=1,
    latent_channels=4,
    frame_step=1,
    min_frames=2,
    max_frames=128,
    trained_frames=14,
    default_width=1024,
    default_height=576,
    default_frames=14,
    default_fps=7,  # the pipeline's default: the UNet is conditioned on fps - 1 = 6
    default_steps=25,
    default_guidance=3.0,  # the pipeline's max_guidance_scale
    default_precision="fp16",
)
RULES = {
    SVD: _SVD_RULES,
    SVD_XT: dataclasses.replace(_SVD_RULES, trained_frames=XT_FRAMES, default_frames=XT_FRAMES),
}
ROLES = Roles(denoisers=("unet",), encoders=("image_encoder",))
MAX_MOTION_BUCKET = 255  # motion buckets the models were trained with


@dataclass(frozen=True)
class SVDSettings:
    """What the SVDOptions node sets; -1 means "the model's own value" (see :data:`OWN`)."""

    motion_bucket_id: int = -1
    noise_aug_strength: float = -1.0
    min_guidance_scale: float = -1.0


# The stock pipeline's defaults, which the diffusers examples run every checkpoint with. (Stability's
# own sampling configs start the XT models' guidance ramp at 1.5, the 14-frame model's at 1.0.)
OWN = SVDSettings(motion_bucket_id=127, noise_aug_strength=0.02, min_guidance_scale=1.0)

_OWN_TEXT = " -1 = the model's own ({})."
OPTION_INPUTS = {
    "motion_bucket_id": ("INT", {
        "default": -1, "min": -1, "max": MAX_MOTION_BUCKET,
        "tooltip": "How much motion, 0-255: higher moves more (camera and subject); too high "
                   "breaks the picture up." + _OWN_TEXT.format(OWN.motion_bucket_id)}),
    "noise_aug_strength": ("FLOAT", {
        "default": -1.0, "min": -1.0, "max": 1.0, "step": 0.01,
        "tooltip": "Noise added to the input image before it conditions the video: more lets the "
                   "video move away from the image (more motion, less likeness). Also raise it "
                   "for images larger than the output." + _OWN_TEXT.format(OWN.noise_aug_strength)}),
    "min_guidance_scale": ("FLOAT", {
        "default": -1.0, "min": -1.0, "max": 100.0, "step": 0.1,
        "tooltip": "Guidance on the first frame: it ramps linearly to I2VSample's guidance_scale "
                   "on the last. Stability's own settings start the XT models at 1.5."
                   + _OWN_TEXT.format(OWN.min_guidance_scale)}),
}

SPEC = FamilySpec(
    name="svd",
    title="SVD",
    long_title="Stable Video Diffusion",
    pipeline_classes=("StableVideoDiffusionPipeline",),
    rules=RULES,
    roles={SVD: ROLES, SVD_XT: ROLES},
    variant_titles={SVD: "SVD", SVD_XT: "SVD-XT"},
    hub_variants=VARIANT_OF_HUB,
    published=PUBLISHED,
    tiny=TINY,
    options_node="SVDOptions",
    option_inputs=OPTION_INPUTS,
    cfg_in_one_call=True,  # one UNet call per step holds both CFG halves, unconditional rows first
    takes_prompt=False,  # the image is the only conditioning
    vae_tiling=False,  # AutoencoderKLTemporalDecoder has no tiled mode
    # Its Euler runs in continuous (EDM) time: the UNet takes 0.25 log(sigma), which only the EDM
    # solvers give; dpmpp_2m is diffusers' EDM DPM-Solver++ with the same Karras sigmas. UniPC and
    # DPM-Solver in discrete time would feed the UNet timestep indices it never saw.
    samplers={SVD: ("euler", "dpmpp_2m"), SVD_XT: ("euler", "dpmpp_2m")},
)
