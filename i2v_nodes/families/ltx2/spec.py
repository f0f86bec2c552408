"""What LTX-2 is, as data: its rules and roles (the sound decoders among them), its options node's
widgets, and flags."""

from __future__ import annotations

from i2v_nodes.families.contract.spec import FamilySpec, Keyframes, Roles, Rules
from i2v_nodes.families.ltx2.configs import NEGATIVE, OPTION_SPECS, PUBLISHED, TINY, VARIANT_OF_HUB

LTX2 = "ltx2"
TEXT_TOKENS = 1024  # max_sequence_length: prompts are padded to it (left, as Gemma's chat prompts)
RULES = {
    LTX2: Rules(size_multiple=32, vae_spatial=32, vae_temporal=8, latent_channels=128, frame_step=8,
                min_frames=9, max_frames=257, trained_frames=121, default_width=768, default_height=512,
                default_frames=121, default_fps=24, default_steps=40, default_guidance=3.0,
                default_precision="bf16", default_negative=NEGATIVE, chunked_decode=False),
}
# The connectors turn Gemma's hidden states into the transformer's text input before the first step;
# the audio VAE and the vocoder turn the sound latents into a waveform after the last.
ROLES = {
    LTX2: Roles(denoisers=("transformer",), encoders=("text_encoder", "connectors"),
                decoders=("audio_vae", "vocoder")),
}
OPTION_INPUTS = {
    name: (kind, {"default": 0 if kind == "INT" else 0.0, "min": low, "max": high, "step": step,
                  "tooltip": tip})
    for name, (kind, low, high, step, tip) in OPTION_SPECS.items()
}

SPEC = FamilySpec(
    name="ltx2",
    title="LTX-2",
    long_title="LTX-2 (with sound)",
    pipeline_classes=("LTX2ImageToVideoPipeline", "LTX2Pipeline"),
    rules=RULES,
    roles=ROLES,
    hub_variants=VARIANT_OF_HUB,
    published=PUBLISHED,
    tiny=TINY,
    options_node="LTX2Options",
    option_inputs=OPTION_INPUTS,
    cfg_in_one_call=True,  # the pipeline batches the negative and positive halves
    # no step cache: diffusers' cache hooks do not know its audio-video blocks (0.42)
    compile_blocks=True,
    attention_backends=True,
    makes_sound=True,
    # The pipeline hands the scheduler custom sigmas and a shift (mu): FlowMatchEuler, UniPC and
    # FlowMatchLCM take them, DPM-Solver does not
    samplers={variant: ("euler", "unipc", "lcm") for variant in RULES},
    # LTX2ConditionPipeline, on the same components, takes images at any frame (one more latent frame
    # of tokens each)
    keyframes={variant: Keyframes(any_frame=True, appended_frames=1) for variant in RULES},
)
