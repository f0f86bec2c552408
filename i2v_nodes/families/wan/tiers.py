"""Wan's tier workflows, as data: A14B where it fits the card, else TI2V-5B; the same tiers again on
ComfyUI's own template files, and those again in ComfyUI's 4-step lightx2v setup."""

from __future__ import annotations

import functools

from i2v_nodes.families.contract.tiers import FileTiers, KeyframeTiers, LoraTiers, TierRun, Tiers
from i2v_nodes.families.wan.spec import A14B, RULES, TI2V
from i2v_nodes.families.wan.stand_ins import (
    LIGHTX2V_LORAS,
    TEMPLATE_FILES,
    gguf_files,
    write_gguf_files,
    write_lightx2v_loras,
    write_template_files,
)

A14B_HUB, TI2V_HUB = "Wan-AI/Wan2.2-I2V-A14B-Diffusers", "Wan-AI/Wan2.2-TI2V-5B-Diffusers"

# ComfyUI's Wan 2.2 14B image-to-video template in its 4-step mode (video_wan2_2_14B_i2v, Comfy-Org's
# workflow_templates): lightx2v's LoRA on each expert at strength 1, 4 steps, cfg 1, ModelSamplingSD3
# shift 5 on both experts, the high-noise expert for steps 0-2 and the low-noise one for 2-4. diffusers'
# own switch (boundary 0.9) at flow shift 5 gives the same 2 + 2 split at 4 steps.
LIGHTX2V = LoraTiers(
    suffix="lightx2v",
    title=", 4 steps (lightx2v LoRAs)",
    variants=(A14B,),
    loras=LIGHTX2V_LORAS,
    stand_ins=write_lightx2v_loras,
    steps=4,
    guidance=1.0,
    options={"guidance_scale_2": 1.0, "boundary_ratio": 0.9, "flow_shift": 5.0},
    sampler="euler",
    remarks=(
        "ComfyUI's own 4-step setup, as its Wan 2.2 14B image-to-video template runs it: lightx2v's "
        "step-distill LoRAs, the high_noise one on the high-noise expert and the low_noise one on the "
        "low-noise expert (two I2VLoRA nodes, strength 1), then 4 steps of euler on ComfyUI's simple "
        "schedule (I2VSamplerOptions), what the LoRAs were distilled for, without CFG (guidance 1 on both "
        "experts; WanOptions: flow shift 5 and the experts switching at 0.9, which splits the 4 steps 2 + 2 "
        "as the template does). 4 steps without CFG are 4 transformer calls where 40 steps with CFG are "
        "80: 20x fewer. The two LoRA files go in models/loras/ (ComfyUI's LoRA folder, where the template "
        "downloads them). The LoRAs add {lora_gib:.2f} GiB per expert (adapters in bf16), counted in "
        "the figures below."
    ),
    cell=", each with its lightx2v 4-step LoRA",
)

# QuantStack's GGUF experts at Q4_K_M (9.65 GB each) with ComfyUI's own UMT5 and VAE: A14B where neither
# the published model nor ComfyUI's fp8 files fit, an 8 GB card with 16 GB of RAM.
GGUF_Q4_K_M = FileTiers(
    suffix="gguf",
    title=", GGUF Q4_K_M experts",
    variant=A14B,
    files=gguf_files("Q4_K_M"),
    stand_ins=functools.partial(write_gguf_files, file_type="Q4_K_M"),
    runs=(TierRun(A14B_HUB, 1280, 720, 81), TierRun(A14B_HUB, 832, 480, 81)),
    cards=(8,),
    remarks=(
        "Wan 2.2 A14B for an 8 GB card, on the files ComfyUI-GGUF users run it from: QuantStack's GGUF "
        "Q4_K_M experts (9.65 GB each, against 14.3 GB for ComfyUI's fp8 ones; each layer is dequantised as "
        "it runs) with ComfyUI's own fp8 UMT5 and Wan 2.1 VAE. Neither the published model nor ComfyUI's fp8 "
        "experts fit this machine; Q4_K_M loses some fine detail against them."
    ),
    source=("QuantStack's Wan2.2-I2V-A14B-GGUF on Hugging Face (the two experts, HighNoise/ and LowNoise/, "
            "into models/unet/) and ComfyUI's own Wan template downloads (the text encoder and VAE)"),
    cell=" (QuantStack's GGUF Q4_K_M experts)",
)

# ComfyUI's Wan 2.2 14B first-last-frame template (video_wan2_2_14B_flf2v): the A14B template's files with
# a start and an end image (WanFirstLastFrameToVideo); here I2VSample's end_image, the stock pipeline's
# last_image. The end image is the last frame of the video the VAE encodes as the condition, so it adds
# no VAE pass and no denoiser tokens: the same plan as the image-to-video tier, plus its pixels.
FIRST_LAST = KeyframeTiers(
    suffix="flf",
    title=", first and last frame",
    variants=(A14B,),
    cards=(16, 24),
    remarks=(
        "First and last frame: a second LoadImage gives I2VSample's end_image, the frame the video must "
        "end on (the stock pipeline's last_image, as ComfyUI's Wan 2.2 14B first-last-frame template "
        "runs it). It is fitted to the size as the start image is (centre crop, then resize), so its size "
        "may differ. Wan encodes it as the last frame of the condition video it encodes anyway: no extra "
        "VAE pass, no extra denoiser tokens, the same steps."
    ),
)

TIERS = Tiers(
    prefix="wan",
    label="Wan",
    runs=(
        TierRun(A14B_HUB, 1280, 720, 81),
        TierRun(A14B_HUB, 832, 480, 81),
        TierRun(TI2V_HUB, 1280, 704, 121),
    ),
    fit_from_card=12,  # 8 GB cards get A14B on GGUF files (below)
    remarks={
        A14B: "Wan 2.2 A14B: two 14B experts, one for the high-noise steps and one for the rest; "
              "WanOptions sets the second one's guidance (the Wan team uses 3.5 for both).",
        TI2V: "Wan 2.2 TI2V-5B: one 5B transformer with a 16x VAE, made for 1280x704 at 24 fps.",
    },
    options={A14B: {"guidance_scale_2": RULES[A14B].default_guidance, "boundary_ratio": 0.0,
                    "flow_shift": 0.0}},
    comfy_files=TEMPLATE_FILES,
    files_stand_ins=write_template_files,
    files_remarks=(
        "This is the tier on the very files ComfyUI's own Wan template downloads, in the folders it "
        "puts them in (LoadI2VModelFiles): nothing new to download."
    ),
    files_source=("ComfyUI's own Wan template downloads (from Comfy-Org's repackaged Wan repos on Hugging "
                  "Face)"),
    lora_tiers=(LIGHTX2V,),
    file_tiers=(GGUF_Q4_K_M,),
    keyframe_tiers=(FIRST_LAST,),
)
