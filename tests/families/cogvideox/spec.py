"""What CogVideoX is, as data: its rules, roles and flags."""

from __future__ import annotations

from i2v_nodes.families.contract.spec import FamilySpec, Roles, Rules
from tests.families.cogvideox.configs import PUBLISHED, TINY, VARIANT_OF_HUB

VARIANT = "cogvideox"
PIPELINE = "CogVideoXImageToVideoPipeline"
TEXT_TOKENS = 226  # max_sequence_length: prompts are padded to it (the transformer's max_text_seq_length)

# CogVideoX-5B-I2V: 720x480, 49 frames (13 latent frames: 4x temporal compression), 8x spatial compression
# and patches of 2 (sizes multiples of 16). Its learned positional embeddings are for exactly that: diffusers
# refuses another size and swaps in sin-cos embeddings at another frame count. Rules cannot say "this size
# only", and the tiny model (same variant, no learned embeddings) must run the contract's small sizes.
RULES = Rules(
    size_multiple=16,
    vae_spatial=8,
    vae_temporal=4,
    latent_channels=16,
    frame_step=4,
    min_frames=5,
    max_frames=49,
    trained_frames=49,
    default_width=720,
    default_height=480,
    default_frames=49,
    default_fps=8,
    default_steps=50,
    default_guidance=6.0,
    default_precision="bf16",
    chunked_decode=False,  # the 3-D VAE decodes the whole clip (decode_latents takes no chunk size)
)
ROLES = Roles(denoisers=("transformer",), encoders=("text_encoder",))

SPEC = FamilySpec(
    name="cogvideox",
    title="CogVideoX",
    long_title="CogVideoX",
    pipeline_classes=(PIPELINE,),
    rules={VARIANT: RULES},
    roles={VARIANT: ROLES},
    variant_titles={VARIANT: "CogVideoX-5B-I2V"},
    hub_variants=VARIANT_OF_HUB,
    published=PUBLISHED,
    tiny=TINY,
    cfg_in_one_call=True,  # one transformer call per step holds both CFG halves, unconditional rows first
)
