"""A family from outside the pack passes the whole contract suite.

``tests/families/cogvideox`` (CogVideoX image-to-video through diffusers' stock pipeline) is a family
package that lives in the tests: it builds on the contract, the toolkit and the errors alone, registers
itself here (``registry.register``, undone when this module ends), and every test of
``tests/test_family_contract.py`` runs on its tiny model, unchanged: they are imported below, so pytest
collects them here, where ``tiny`` is this family's handle.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from i2v_nodes.families import registry
from i2v_nodes.runtime import sampling
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.sampling.settings import images_to_pil
from tests import test_family_contract as contract
from tests.families.cogvideox import FAMILY
from tests.families.cogvideox.spec import RULES
from tests.test_house import ERRORS, PACK_MODULES, REPO, SHARED, in_shared, too_long

# The whole contract suite (its test functions and any test classes), collected in this module, so against
# this module's ``tiny`` fixture.
CONTRACT_TESTS = {name: test for name, test in vars(contract).items() if name.startswith(("test_", "Test"))}
globals().update(CONTRACT_TESTS)

TINY = "tiny-cogvideox"
HUB_ID = "THUDM/CogVideoX-5b-I2V"
PACKAGE = "tests.families.cogvideox"
PACKAGE_DIR = REPO / Path(*PACKAGE.split("."))
# Modules that read the registry when they are imported (the nodes build their descriptions and option
# nodes from it): imported before the family registers, so none of them ever sees it.
IMPORT_TIME_READERS = ("i2v_nodes.nodes",)
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def registered(model_dirs) -> Iterator[None]:
    for name in IMPORT_TIME_READERS:
        # one that cannot be imported now cannot be imported while the family is registered either
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    before = registry.REGISTERED
    registry.register(FAMILY)
    try:
        yield
    finally:
        try:
            _unload_cached(model_dirs)
        finally:
            registry.unregister(FAMILY)
    assert registry.REGISTERED == before


def _unload_cached(model_dirs: list[Path]) -> None:
    """Drop the family's pipelines from the process cache (the contract's runs use it), so nothing of a
    family that is no longer registered outlives this module."""
    cache = sampling.default_cache()
    for precision in ("auto", "bf16"):  # the contract suite's two loads
        handle = models.open_model(TINY, models.LoadOptions(precision=precision), model_dirs, CPU)
        for offload in models.OFFLOAD_CHOICES:
            cache.unload(dataclasses.replace(handle.cache_key, offload=offload))


@pytest.fixture(scope="module")
def tiny(registered, model_dirs):
    """The contract suite's model: this family's tiny model, built on first use from the registry."""
    handle = models.open_model(TINY, models.LoadOptions(), model_dirs, CPU)
    assert handle.family is FAMILY and handle.variant == "cogvideox"
    return handle


def test_the_contract_suite_is_collected_here():
    assert CONTRACT_TESTS and all(globals()[name] is test for name, test in CONTRACT_TESTS.items())


def test_the_registry_finds_the_family_by_name_folder_and_hub_id(tiny):
    assert registry.get("cogvideox") is FAMILY
    assert registry.for_hub_id(HUB_ID) is FAMILY
    assert "CogVideoXImageToVideoPipeline" in registry.supported_pipelines()
    index = {"_class_name": "CogVideoXImageToVideoPipeline"}
    assert registry.identify(index, {}) == (FAMILY, "cogvideox")
    assert registry.identify(index, {"transformer": {"patch_size_t": 2}}) is None  # 1.5: other rules
    with pytest.raises(ValueError, match="registered already"):
        registry.register(FAMILY)


def test_the_initial_latents_are_the_noise_the_stock_pipeline_draws_from_the_seed(tiny, still_image):
    """A plain stock call with only the generator gives what it gives with the family's noise: the pack's
    seed means what the pipeline's seed means."""
    pipe = FAMILY.pipeline_class().from_pretrained(tiny.source)
    pipe.set_progress_bar_config(disable=True)
    s = contract.settings_for(tiny, seed=7)
    image = FAMILY.prepare_image(images_to_pil(still_image)[0], s.width, s.height)
    noise = FAMILY.initial_latents(pipe, tiny.variant, [s.seed], s.num_frames, s.height, s.width, CPU)
    assert noise.shape == (1, RULES.latent_channels, RULES.latent_frames(s.num_frames), s.height // 8,
                           s.width // 8)
    common = {"image": image, "prompt": s.prompt, "height": s.height, "width": s.width,
              "num_frames": s.num_frames, "num_inference_steps": 1, "guidance_scale": 1.0,
              "output_type": "latent", "return_dict": False}
    drawn = pipe(**common, generator=torch.Generator("cpu").manual_seed(s.seed))[0]
    given = pipe(**common, generator=torch.Generator("cpu").manual_seed(s.seed),
                 latents=noise.permute(0, 2, 1, 3, 4))[0]
    assert torch.equal(drawn, given)


def test_the_published_model_is_sized_and_traced_without_weights():
    configs, params = FAMILY.published_description(HUB_ID)
    counts = dict(params)
    assert 5.4e9 < counts["transformer"] < 5.8e9  # CogVideoX-5B's transformer
    assert 4.7e9 < counts["text_encoder"] < 4.8e9  # T5 v1.1 XXL's encoder
    assert 0.2e9 < counts["vae"] < 0.25e9
    rules = FAMILY.rules("cogvideox")
    size = (rules.default_frames, rules.default_height, rules.default_width)
    peak = FAMILY.traces.denoiser("cogvideox", json.dumps(configs, sort_keys=True), torch.bfloat16, 2,
                                  *size).peak_bytes()
    assert peak > 2 * 17550 * 3072 * 2  # at least the two rows' hidden states: 13 x 30 x 45 tokens, 3072 wide


def test_the_family_package_imports_from_the_pack_only_the_contract_the_toolkit_and_the_errors():
    wrong = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        for target, line in _imports(path):
            if not _allowed(target):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_pack_knows_nothing_of_the_family():
    named = [str(path.relative_to(REPO)) for path in PACK_MODULES.values()
             if "cogvideo" in path.read_text(encoding="utf-8").lower()]
    assert not named, named


def test_the_family_package_keeps_the_house_sizes():
    offenders = [problem for path in sorted(PACKAGE_DIR.rglob("*.py")) for problem in too_long(path)]
    assert not offenders, "\n".join(offenders)


def _allowed(target: str) -> bool:
    """Of the pack: the contract, the toolkit and the errors; of the tests: the family's own package; any
    library."""
    top = target.split(".")[0]
    if top == "i2v_nodes":
        return target == ERRORS or any(in_shared(target, shared) for shared in SHARED)
    return top != "tests" or target == PACKAGE or target.startswith(PACKAGE + ".")


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (``from package import module`` as the module), with its line."""
    parts = path.relative_to(REPO).with_suffix("").parts
    package = ".".join(parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                yield (name if name in PACK_MODULES or _is_module(name) else base), node.lineno


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module of the tests (``from tests import test_house`` imports the module)."""
    path = REPO / Path(*name.split("."))
    return name.split(".")[0] == "tests" and (path.with_suffix(".py").is_file() or path.is_dir())
