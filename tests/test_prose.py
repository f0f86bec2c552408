"""Prose that lists the families comes from the registry, or is checked against it here: a new family
cannot leave a node's help, the package's description or the README stale."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from i2v_nodes.families import registry
from i2v_nodes.families.contract.spec import FamilySpec, Roles, Rules
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS, family_prose, load_model, sample

REPO = Path(__file__).resolve().parents[1]
TITLES = [family.title for family in registry.REGISTERED]


def tooltip(node: str, name: str) -> str:
    inputs = NODE_CLASS_MAPPINGS[node].INPUT_TYPES()
    spec = {**inputs["required"], **inputs.get("optional", {})}[name]
    return spec[1]["tooltip"]


def test_the_loaders_and_the_sampler_describe_every_family():
    for text in (NODE_CLASS_MAPPINGS["LoadI2VModel"].DESCRIPTION, tooltip("LoadI2VModel", "model"),
                 NODE_CLASS_MAPPINGS["I2VSample"].DESCRIPTION):
        missing = [f.spec.long_title for f in registry.REGISTERED if f.spec.long_title not in text]
        assert not missing, (missing, text)


def test_size_and_frame_rules_name_every_family_and_agree_between_the_guard_and_the_sampler():
    for name in ("width", "num_frames"):
        sampler, guard = tooltip("I2VSample", name), tooltip("VRAMGuard", name)
        rule = (family_prose.grouped(lambda r: r.size_multiple) if name == "width"
                else family_prose.frame_rules())
        assert rule in sampler and rule in guard
    frames = family_prose.frame_rules()
    for family in registry.REGISTERED:
        assert family.title in frames
        for rules in family.spec.rules.values():
            assert str(rules.trained_frames) in frames


def test_silence_is_said_of_every_family_without_sound():
    text = NODE_CLASS_MAPPINGS["I2VSample"].OUTPUT_TOOLTIPS[3]
    for family in registry.REGISTERED:
        assert (family.title in text) != family.spec.makes_sound, family.title


def test_the_single_file_loader_names_every_family_that_reads_files():
    files = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"]
    for text in (files.DESCRIPTION, tooltip("LoadI2VModelFiles", "diffusion_model")):
        for family in registry.file_readers():
            assert family.title in text, (family.title, text)


def test_the_package_description_and_display_name_name_every_family():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11's")
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    for text in (project["project"]["description"], project["tool"]["comfy"]["DisplayName"]):
        missing = [title for title in TITLES if title not in text.replace("Stable Video Diffusion", "SVD")]
        assert not missing, (missing, text)


def test_the_readme_family_list_names_every_family():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- families -->(.*?)<!-- /families -->", readme, re.S)
    text = block.group(1) if block else readme
    missing = [f.spec.long_title for f in registry.REGISTERED if f.spec.long_title not in text]
    assert not missing, f"README's family list lacks {missing}"


def test_a_newly_registered_family_appears_in_the_generated_prose():
    rules = Rules(size_multiple=64, vae_spatial=8, vae_temporal=1, latent_channels=4, frame_step=6,
                  min_frames=7, max_frames=49, trained_frames=37, default_width=512, default_height=512,
                  default_frames=37, default_fps=8, default_steps=12, default_guidance=2.5,
                  default_precision="bf16")
    spec = FamilySpec(name="newcomer", title="Newcomer", long_title="Newcomer 1.0", pipeline_classes=(),
                      rules={"v1": rules}, roles={"v1": Roles(denoisers=("transformer",))})
    family = types.SimpleNamespace(name="newcomer", title="Newcomer", spec=spec, files=None)
    registry.register(family)
    try:
        assert "Newcomer 1.0" in family_prose.families()
        assert "64 for Newcomer" in family_prose.grouped(lambda r: r.size_multiple)
        assert "Newcomer 6k+1 up to 49 (trained on 37)" in family_prose.frame_rules()
        assert "Newcomer 12" in sample.family_tips()["steps"]
        assert "Newcomer 1.0" in load_model.family_tips()["model"]
    finally:
        registry.unregister(family)
    assert "Newcomer" not in family_prose.families()
