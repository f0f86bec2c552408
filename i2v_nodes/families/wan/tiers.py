"""Wan's tier workflows, as data: A14B where it fits the card, else TI2V-5B; the same tiers again on
ComfyUI's own template files, and those again in ComfyUI's 4-step lightx2v setup."""

from __future__ import annotations

from i2v_nodes.families.contract.tiers import LoraTiers, TierRun, Tiers
from i2v_nodes.families.wan.spec import A14B, RULES, TI2V
from i2v_nodes.families.wan.stand_ins import (
    LIGHTX2V_LORAS,
    TEMPLATE_FILES,
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
    remarks=(
        "ComfyUI's own 4-step setup, as its Wan 2.2 14B image-to-video template runs it: lightx2v's "
        "step-distill LoRAs, the high_noise one on the high-noise expert and the low_noise one on the "
        "low-noise expert (two I2VLoRA nodes, strength 1), then 4 steps without CFG (guidance 1 on both "
        "experts; WanOptions: flow shift 5 and the experts switching at 0.9, which splits the 4 steps 2 + 2 "
        "as the template does). 4 steps without CFG are 4 transformer calls where 40 steps with CFG are "
        "80: 20x fewer. The two LoRA files go in models/loras/ (ComfyUI's LoRA folder, where the template "
        "downloads them). The LoRAs add {lora_gib:.2f} GiB per expert (adapters in bf16), counted in "
        "the figures below."
    ),
    cell=", each with its lightx2v 4-step LoRA",
)

TIERS = Tiers(
    prefix="wan",
    label="Wan",
    runs=(
        TierRun(A14B_HUB, 1280, 720, 81),
        TierRun(A14B_HUB, 832, 480, 81),
        TierRun(TI2V_HUB, 1280, 704, 121),
    ),
    fit_every_card=True,
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
)
