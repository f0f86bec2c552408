"""I2VGen-XL's tier workflows, as data: the seed article's preset table, kept where the estimator
agrees (each Note says where it does not)."""

from __future__ import annotations

from i2v_nodes.families.contract.tiers import Preset, Tiers
from i2v_nodes.families.i2vgen_xl.spec import HUB_ID

PRESETS = (
    Preset("i2v-preview", "Fast preview", 8, 16, "any 8 GB GPU", HUB_ID, 256, 8, 30, 8, 9.0, "a few seconds",
           "For trying prompts and images quickly before a full-size run."),
    Preset("i2v-12gb", "12 GB (e.g. RTX 3060)", 12, 16, "RTX 3060 12 GB", HUB_ID, 512, 16, 40, 8, 9.0,
           "50-70 s",
           "The standard mode: 512x512 is I2VGen-XL's sweet spot and 16 frames its trained length. "
           "The seed table doubted 512p on 12 GB; VRAMGuard's estimate (fp16 weights, fp32 VAE, "
           "decode in small chunks) fits with room to spare, so the tier keeps it."),
    Preset("i2v-24gb", "24 GB (e.g. RTX 4090)", 24, 32, "RTX 4090 24 GB", HUB_ID, 768, 24, 60, 12, 10.0,
           "80-100 s",
           "24 frames is above the 16 I2VGen-XL was trained on: motion can drift late in the clip "
           "(VRAMGuard's report says so). Set num_frames to 16 on both VRAMGuard and I2VSample for the "
           "most coherent motion."),
    Preset("i2v-40gb", "40 GB+ (e.g. A100)", 40, 32, "A100 40 GB", HUB_ID, 1024, 32, 80, 24, 11.0,
           "120-150 s",
           "32 frames is twice the trained length (motion may drift), and past 60 steps quality barely "
           "improves: 60 steps saves a quarter of the time for the same look. Both are kept at the seed "
           "table's values so the tier matches it; lower them freely."),
)

TIERS = Tiers(prefix="i2v", label="I2VGen-XL", presets=PRESETS)
