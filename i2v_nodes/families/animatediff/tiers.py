"""AnimateDiff's tier workflows, as data: PIA on SD 1.5 at its trained 512x512, 16 frames."""

from __future__ import annotations

from i2v_nodes.families.animatediff.configs import HUB_ID, PIA
from i2v_nodes.families.animatediff.spec import OPTION_INPUTS
from i2v_nodes.families.contract.tiers import TierRun, Tiers

REMARKS = (
    "AnimateDiff image-to-video through PIA: a Stable Diffusion 1.5 base with PIA's motion adapter, "
    "which conditions every frame on the image. 16 frames at 512x512 is what it was trained on (up to 32 "
    "run with a warning). AnimateDiffOptions sets strength (lower keeps closer to the image) and PIA's "
    "motion presets (0-2 more motion, 3-5 looping, 6-8 style transfer); every -1 keeps the model's own."
)

TIERS = Tiers(
    prefix="animatediff",
    label="AnimateDiff (PIA)",
    runs=(TierRun(HUB_ID, 512, 512, 16),),
    remarks={PIA: REMARKS},
    options={PIA: {name: -1 for name in OPTION_INPUTS}},
)
