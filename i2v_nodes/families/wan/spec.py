"""What Wan is, as data: its three variants' rules and roles, its options node's widgets, and flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from i2v_nodes.families.contract.spec import FamilySpec, Keyframes, Roles, Rules
from i2v_nodes.families.wan.configs import PUBLISHED, TINY, VARIANT_OF_HUB

WAN21, A14B, TI2V, FLF2V = "wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "wan2.1-flf2v"

# The Wan team's default negative prompt (wan/configs/shared_config.py), which the models were tuned with.
NEGATIVE = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
    "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，"
    "背景人很多，倒着走"
)
TEXT_TOKENS = 512  # max_sequence_length: prompts are padded to it

_COMMON = {
    "vae_temporal": 4,
    "frame_step": 4,
    "min_frames": 5,
    "max_frames": 241,
    "default_precision": "bf16",
    "default_negative": NEGATIVE,
    "chunked_decode": False,
}
_WAN21_RULES = Rules(
    size_multiple=16,
    vae_spatial=8,
    latent_channels=16,
    trained_frames=81,
    default_width=832,
    default_height=480,
    default_frames=81,
    default_fps=16,
    default_steps=40,
    default_guidance=5.0,
    **_COMMON,
)
RULES = {
    WAN21: _WAN21_RULES,
    A14B: dataclasses.replace(_WAN21_RULES, default_guidance=3.5),  # the Wan team's 3.5 for both experts
    TI2V: Rules(
        size_multiple=32,
        vae_spatial=16,
        latent_channels=48,
        trained_frames=121,
        default_width=1280,
        default_height=704,
        default_frames=121,
        default_fps=24,
        default_steps=50,
        default_guidance=5.0,
        **_COMMON,
    ),
    # Wan 2.1 FLF2V-14B-720P: Wan 2.1 I2V's layout with positions for two images' CLIP states; the Wan
    # team's 720p and 50 steps for first-last-frame (generate.py)
    FLF2V: dataclasses.replace(_WAN21_RULES, default_width=1280, default_height=720, default_steps=50),
}
ROLES = {
    WAN21: Roles(denoisers=("transformer",), encoders=("text_encoder", "image_encoder")),
    A14B: Roles(denoisers=("transformer", "transformer_2"), encoders=("text_encoder",)),
    TI2V: Roles(denoisers=("transformer",), encoders=("text_encoder",)),
    FLF2V: Roles(denoisers=("transformer",), encoders=("text_encoder", "image_encoder")),
}


@dataclass(frozen=True)
class WanSettings:
    """What the WanOptions node sets; 0 means "the model's own value"."""

    guidance_scale_2: float = 0.0  # the low-noise expert's guidance (A14B); 0 = same as guidance_scale
    boundary_ratio: float = 0.0  # where A14B switches experts, as a fraction of the 1000 train steps
    flow_shift: float = 0.0  # the scheduler's flow shift (higher: more steps at high noise)


OPTION_INPUTS = {
    "guidance_scale_2": (
        "FLOAT",
        {
            "default": 0.0,
            "min": 0.0,
            "max": 100.0,
            "step": 0.1,
            "tooltip": (
                "Wan 2.2 A14B: guidance of the low-noise expert (the later, detail steps). 0 = the "
                "same as I2VSample's guidance_scale (the Wan team uses 3.5 for both). Only A14B has "
                "two experts."
            ),
        },
    ),
    "boundary_ratio": (
        "FLOAT",
        {
            "default": 0.0,
            "min": 0.0,
            "max": 1.0,
            "step": 0.005,
            "tooltip": (
                "Wan 2.2 A14B: where the high-noise expert hands over to the low-noise one, as a "
                "fraction of the 1000 training timesteps (the model's own is 0.9). Higher gives the "
                "low-noise expert more steps. 0 = the model's own."
            ),
        },
    ),
    "flow_shift": (
        "FLOAT",
        {
            "default": 0.0,
            "min": 0.0,
            "max": 30.0,
            "step": 0.1,
            "tooltip": (
                "The scheduler's flow shift: higher spends more of the steps at high noise (more "
                "motion and structure, fewer fine details). The Wan team uses 3.0 for 480p and 5.0 "
                "for 720p; 0 = the model's own."
            ),
        },
    ),
}

SPEC = FamilySpec(
    name="wan",
    title="Wan",
    long_title="Wan 2.1 / 2.2",
    pipeline_classes=("WanImageToVideoPipeline", "WanPipeline"),
    rules=RULES,
    roles=ROLES,
    variant_titles={WAN21: "Wan 2.1", A14B: "Wan 2.2 A14B", TI2V: "Wan 2.2 TI2V-5B", FLF2V: "Wan 2.1 FLF2V"},
    hub_variants=VARIANT_OF_HUB,
    published=PUBLISHED,
    tiny=TINY,
    options_node="WanOptions",
    option_inputs=OPTION_INPUTS,
    cfg_truncation=True,
    # diffusers' FasterCache fails on Wan's transformer (0.42): its CFG calls come one at a time
    step_caches=("first_block", "taylorseer", "magcache"),
    compile_blocks=True,
    attention_backends=True,
    # The pipeline only asks the scheduler for its steps: every flow-matching sampler runs
    samplers={variant: ("euler", "unipc", "dpmpp_2m", "lcm") for variant in RULES},
    # the stock pipeline's last_image: A14B (no image encoder), and FLF2V, which needs it (its CLIP
    # embedding has positions for two images). Wan 2.1 I2V has none: the stock pipeline hands its
    # transformer the two images' CLIP states as two batch rows and fails. TI2V-5B's per-token
    # timesteps condition on the first frame only (the pipeline ignores last_image).
    keyframes={A14B: Keyframes(), FLF2V: Keyframes(required=True)},
)
