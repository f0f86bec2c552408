"""LTX-Video's tier workflows, as data: 0.9.7-dev (13B) where it fits, else 0.9.5 (2B)."""

from __future__ import annotations

from i2v_nodes.families.contract.tiers import TierRun, Tiers
from i2v_nodes.families.ltx_video.spec import OPTION_INPUTS, RULES

DEV_13B, DEV_2B = "Lightricks/LTX-Video-0.9.7-dev", "Lightricks/LTX-Video-0.9.5"

REMARKS = (
    "LTX-Video ({model}): a {size} transformer with a 32x VAE (sizes a multiple "
    "of 32, frames 8k+1). LTXVideoOptions holds its decode timestep, decode noise, guidance rescale "
    "and image conditioning; -1 keeps the release's own. For 8 steps without guidance, load "
    "Lightricks/LTX-Video-0.9.7-distilled and set steps 8, guidance 1."
)

TIERS = Tiers(
    prefix="ltx-video",
    label="LTX-Video",
    runs=(TierRun(DEV_13B, 1216, 704, 121), TierRun(DEV_13B, 768, 512, 121), TierRun(DEV_2B, 768, 512, 121)),
    remarks={variant: REMARKS for variant in RULES},
    options={variant: {name: -1.0 for name in OPTION_INPUTS} for variant in RULES},
)
