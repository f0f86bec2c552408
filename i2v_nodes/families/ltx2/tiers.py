"""LTX-2's tier workflows, as data: the 19B model at 1280x704 where it fits, else 768x512."""

from __future__ import annotations

from i2v_nodes.families.contract.tiers import TierRun, Tiers
from i2v_nodes.families.ltx2.spec import RULES

HUB_ID = "Lightricks/LTX-2"

REMARKS = (
    "LTX-2: a 19B audio-video transformer with the Gemma 3 12B text encoder; one run makes the clip and "
    "its sound. I2VSample's audio output goes into EncodeVideo's audio (AAC in the mp4), and target_fps is "
    "the frame rate the model is conditioned on. Describe the sound in the prompt too. LTX2Options (not "
    "in this graph) adds sound guidance, STG and modality guidance: each guidance pass costs a full "
    "transformer call per step."
)

TIERS = Tiers(
    prefix="ltx2",
    label="LTX-2",
    runs=(TierRun(HUB_ID, 1280, 704, 121), TierRun(HUB_ID, 768, 512, 121)),
    remarks={variant: REMARKS for variant in RULES},
)
