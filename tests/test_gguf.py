"""GGUF transformers as ComfyUI-GGUF users have them, from their headers alone: the published Wan 2.2
A14B experts at each quantisation (header stand-ins of their exact layout, the data a sparse hole),
recognised, sized (stored size plus one dequantised layer) and refused where the pack cannot read
them; truncated GGUF and safetensors files refused naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from i2v_nodes import host
from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families.toolkit import gguf_header
from i2v_nodes.families.toolkit.file_headers import read_file_header
from i2v_nodes.families.toolkit.gguf_writing import write_gguf
from i2v_nodes.families.toolkit.meta import config_json
from i2v_nodes.families.toolkit.safetensors_header import Header
from i2v_nodes.families.wan import stand_ins
from i2v_nodes.families.wan.configs import PUBLISHED
from i2v_nodes.families.wan.write import gguf_tensor_types
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory.estimate import RunShape, denoiser_activations, estimate_ram, weight_bytes

A14B = PUBLISHED[stand_ins.A14B_HUB]["transformer"]
GB = 10**9
FILE_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M")
# QuantStack's Wan2.2-I2V-A14B-GGUF experts as published (GB, /work/shared/memory-notes.md's anchors)
PUBLISHED_SIZES = {"Q5_K_M": 10.8, "Q4_K_M": 9.65}
MATRIX_TYPES = {"Q8_0": {"Q8_0"}, "Q6_K": {"Q6_K"}, "Q5_K_M": {"Q5_K", "Q6_K"}, "Q4_K_M": {"Q4_K", "Q6_K"},
                "Q3_K_M": {"Q3_K", "Q4_K", "Q5_K"}}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gguf-stand-ins")


@pytest.fixture(scope="module")
def template(root) -> dict[str, Path]:
    return stand_ins.write_template_files(root, "wan2.2-i2v-a14b")


def a14b_shapes() -> dict[str, tuple[int, ...]]:
    from i2v_nodes.families.wan.components import meta_component
    from i2v_nodes.families.wan.keys import transformer_to_original

    module = meta_component("transformer", config_json(A14B), torch.float32)
    return {transformer_to_original(name): tuple(t.shape) for name, t in module.state_dict().items()}


def test_the_readable_types_are_what_diffusers_dequantises():
    from diffusers.quantizers.gguf.utils import SUPPORTED_GGUF_QUANT_TYPES

    assert set(gguf_header.READABLE) == {"F32", "F16"} | {t.name for t in SUPPORTED_GGUF_QUANT_TYPES}
    assert set(gguf_header.DEQUANTISE_PEAK) == set(gguf_header.BLOCKS)


@pytest.mark.parametrize("kind", gguf_header.BLOCKS)
def test_the_dequantisation_table_is_what_dequantising_really_takes(kind):
    """Traced on the meta device: dequantising one matrix and casting it to each compute dtype."""
    import gguf
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    from i2v_nodes.runtime.memory.trace import peak_bytes

    quant = gguf.GGMLQuantizationType[kind]
    block, size = gguf.GGML_QUANT_SIZES[quant]
    rows, cols = 512, 4096
    weight = GGUFParameter(torch.empty(rows, cols // block * size, dtype=torch.uint8, device="meta"),
                           quant_type=quant)
    worst = max(peak_bytes(lambda d=dtype: dequantize_gguf_tensor(weight).to(d)) / (rows * cols)
                for dtype in (torch.bfloat16, torch.float16, torch.float32))
    assert worst <= gguf_header.DEQUANTISE_PEAK[kind] <= worst * 1.01


def test_the_stand_ins_have_the_published_sizes(root):
    sizes = [stand_ins.write_gguf_experts(root, t)["diffusion_model"].stat().st_size / GB for t in FILE_TYPES]
    assert sizes == sorted(sizes, reverse=True)
    for file_type, size in PUBLISHED_SIZES.items():
        assert abs(sizes[FILE_TYPES.index(file_type)] - size) < 0.01 * size


@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_each_published_quantisation_is_recognised_and_sized(file_type, root, template):
    experts = stand_ins.write_gguf_experts(root, file_type)
    high = experts["diffusion_model"]
    header = read_file_header(high)
    assert header.container == "gguf" and gguf_header.architecture(header) == "wan"
    matrices = {t.dtype for t in header.tensors.values() if t.dtype in gguf_header.BLOCKS}
    assert matrices == MATRIX_TYPES[file_type]
    handle = models.handle_for_files({**template, **experts}, device="cuda", precision="bf16")
    assert handle.variant == "wan2.2-i2v-a14b" and handle.weights == "default"
    parts = handle.files.parts
    assert parts["transformer"].path == high and parts["transformer_2"].path == experts["diffusion_model_2"]
    assert {parts[r].format for r in ("transformer", "transformer_2")} == {f"gguf-{file_type}"}
    fp8 = models.handle_for_files(template, device="cuda")  # the fp8_scaled experts: the same weights
    assert parts["transformer"].params == fp8.files.parts["transformer"].params
    # memory: the quantised matrices at their stored size, the rest (a few %) in the compute dtype
    gguf = parts["transformer"].gguf
    counted = weight_bytes(handle)["transformer"]
    assert gguf.stored_bytes < counted < header.nbytes * 1.06
    assert counted == gguf.stored_bytes + 4 * gguf.fp32_params + 2 * (
        parts["transformer"].params - gguf.stored_params - gguf.fp32_params)


def test_memory_is_the_stored_size_plus_one_dequantised_layer(root, template):
    experts = stand_ins.write_gguf_experts(root, "Q4_K_M")
    handle = models.handle_for_files({**template, **experts}, device="cuda", precision="bf16")
    gguf = handle.files.parts["transformer"].gguf
    # the costliest matrix to dequantise: a feed-forward one (13824 x 5120), at 6 bytes a weight
    assert gguf.dequantise_peak == 13824 * 5120 * 6
    shape = RunShape(832, 480, 81)
    from i2v_nodes.runtime.memory.estimate import MemoryOptions, _traced_denoiser, denoiser_rows

    options = MemoryOptions(offload="model")
    traced = _traced_denoiser(handle.family, handle.variant, handle.configs_json, "bf16",
                              denoiser_rows(handle, shape, options), 81, 480, 832, "cuda")
    assert denoiser_activations(handle, shape, options) == traced + gguf.dequantise_peak
    # system RAM while loading: the mapped file passes through, never a copy beside it
    load = estimate_ram(handle, shape, MemoryOptions(offload="none"))
    assert load.phase == "load" and load.weights == weight_bytes(handle)["transformer"]


def test_another_architecture_is_refused_naming_file_type_and_what_is_read(root):
    flux = write_gguf(root / "unet" / "flux1-dev-Q4_K_M.gguf",
                      {"double_blocks.0.img_attn.proj.weight": ("Q4_K", (3072, 3072))}, "flux", "Q4_K_M")
    t5 = write_gguf(root / "text_encoders" / "umt5-xxl-encoder-Q8_0.gguf",
                    {"enc.blk.0.attn_q.weight": ("Q8_0", (4096, 4096))}, "t5encoder", "Q8_0")
    template = stand_ins.write_template_files(root, "wan2.2-i2v-a14b")
    with pytest.raises(InputError, match=r"input 'diffusion_model': flux1-dev-Q4_K_M\.gguf is a GGUF file "
                                         r"of architecture 'flux' \(Q4_K_M\), not one this pack reads; it "
                                         r"reads GGUF Wan 2\.1 / 2\.2 image-to-video transformers "
                                         r"\(architecture 'wan'"):
        models.handle_for_files({**template, "diffusion_model": flux})
    with pytest.raises(InputError, match=r"input 'text_encoder': umt5-xxl-encoder-Q8_0\.gguf is a GGUF file "
                                         r"of architecture 't5encoder' \(Q8_0\), not one this pack reads"):
        models.handle_for_files({**template, "text_encoder": t5})


@pytest.mark.parametrize("kind", ["IQ2_XXS", "F64"])
def test_an_unreadable_quantisation_is_refused_naming_file_type_and_what_is_read(kind, root, template):
    """IQ2_XXS (an i-quant diffusers cannot dequantise) for the matrices; F64 for the vectors."""
    tensors = gguf_tensor_types(a14b_shapes(), "Q4_K_M")
    swap = {"Q4_K": kind, "Q6_K": kind} if kind == "IQ2_XXS" else {"F32": kind}
    tensors = {name: (swap.get(t, t), shape) for name, (t, shape) in tensors.items()}
    file_type = kind if kind == "IQ2_XXS" else "Q4_K_M"
    path = write_gguf(root / "unet" / f"Wan2.2-I2V-A14B-HighNoise-{kind}.gguf", tensors, "wan", file_type)
    with pytest.raises(InputError, match=rf"input 'diffusion_model': Wan2\.2-I2V-A14B-HighNoise-{kind}\.gguf "
                                         rf"is a GGUF file of type {file_type} whose tensors are stored "
                                         rf"as {kind}, which this pack cannot compute from; it reads GGUF "
                                         r"files of the types Q8_0, Q6_K, Q5_K_M, .*Q4_K_M.*Q3_K_M"):
        models.handle_for_files({**template, "diffusion_model": path})


def test_the_quantisation_comes_from_the_header_then_the_name(root):
    tensors = {"head.modulation": ("F32", (1, 2, 256)), "blocks.0.ffn.0.weight": ("Q4_K", (256, 256))}
    named = write_gguf(root / "misc" / "model-Q5_K_S.gguf", tensors, "wan", "Q4_K_M")
    assert gguf_header.file_type(read_file_header(named)) == "Q4_K_M"  # general.file_type wins
    header = read_file_header(named)
    named_only = Header(root / "x-Q5_K_S.gguf", header.tensors, {}, container="gguf")
    assert gguf_header.file_type(named_only) == "Q5_K_S"  # the name's, where the header names none
    assert gguf_header.file_type(Header(root / "x.gguf", header.tensors, {}, container="gguf")) == "Q4_K"


def truncated(source: Path, target: Path, keep: int) -> Path:
    """The first ``keep`` bytes of a stand-in (its written part, then the hole: sparse again)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as fh:
        target.write_bytes(fh.read(min(keep, 2**20)))
    os.truncate(target, keep)
    return target


def test_truncated_gguf_and_safetensors_files_are_refused_naming_the_file(root, template):
    source = stand_ins.write_gguf_experts(root, "Q4_K_M")["diffusion_model"]
    for keep in (source.stat().st_size - 1000, 4096, 10):  # in the data, in the tensor index, in the header
        cut = truncated(source, root / "cut" / f"Wan2.2-I2V-A14B-HighNoise-Q4_K_M-{keep}.gguf", keep)
        with pytest.raises(InputError, match=rf"input 'diffusion_model': .*{cut.name} is truncated"):
            models.handle_for_files({**template, "diffusion_model": cut})
    vae = template["vae"]
    cut = truncated(vae, root / "cut" / "wan_2.1_vae.safetensors", vae.stat().st_size - 4)
    with pytest.raises(InputError, match=r"input 'vae': .*wan_2\.1_vae\.safetensors is truncated: its header "
                                         r"describes \d+ bytes, the file has \d+"):
        models.handle_for_files({**template, "vae": cut})
    with pytest.raises(ModelError, match="is truncated"):
        read_file_header(truncated(vae, root / "cut" / "vae-head.safetensors", 100))


def test_stand_ins_are_whole_files_that_take_no_disk(root, template):
    high = stand_ins.write_gguf_experts(root, "Q8_0")["diffusion_model"]
    for path in (high, template["diffusion_model"]):
        assert path.stat().st_blocks * 512 < 10**6 < path.stat().st_size  # sparse where the file system is


def test_the_node_lists_gguf_files_beside_safetensors_and_in_comfyui_ggufs_unet_folder(session_dirs):
    from i2v_nodes.nodes import NODE_CLASS_MAPPINGS

    models_dir = session_dirs["models"]
    made = [models_dir / "unet" / "listed-HighNoise-Q4_K_M.gguf",
            models_dir / "diffusion_models" / "listed-LowNoise-Q4_K_M.gguf"]
    try:
        for path in made:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"GGUF")
        required = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"].INPUT_TYPES()["required"]
        for slot in ("diffusion_model", "diffusion_model_2"):
            assert {path.name for path in made} <= set(required[slot][0])
        assert host.model_file_path("unet", made[0].name) == made[0]
    finally:
        for path in made:
            path.unlink()


def test_inside_a_host_the_gguf_list_is_comfyui_ggufs_own(tmp_path):
    from host_stub import Host

    stub = Host(models_dir=tmp_path / "models")
    for folder, name in (("unet", "a-Q8_0.gguf"), ("diffusion_models", "b-Q8_0.gguf"),
                         ("diffusion_models", "c.safetensors")):
        (tmp_path / "models" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "models" / folder / name).write_bytes(b"GGUF")
    with stub.active():
        import folder_paths

        assert "unet_gguf" not in folder_paths.folder_names_and_paths  # no ComfyUI-GGUF here
        assert host.model_files("unet") == ["a-Q8_0.gguf", "b-Q8_0.gguf"]  # ComfyUI-GGUF's list, made
        assert folder_paths.folder_names_and_paths["unet_gguf"][1] == {".gguf"}
        assert host.model_files("diffusion_models") == ["c.safetensors"]  # ComfyUI's own list as it is
        assert host.model_file_path("unet", "b-Q8_0.gguf") == tmp_path / "models" / "diffusion_models" / \
            "b-Q8_0.gguf"
        # where ComfyUI-GGUF made its list, it is used as it is
        folder_paths.folder_names_and_paths["unet_gguf"] = ([str(tmp_path / "models" / "unet")], {".gguf"})
        assert host.model_files("unet") == ["a-Q8_0.gguf"]


def test_the_pack_config_travels_in_a_gguf_string_field(root):
    config = {"rope_max_seq_len": 32}
    path = write_gguf(root / "misc" / "configured.gguf", {"head.modulation": ("F32", (1, 2, 128))}, "wan",
                      "Q8_0", metadata={"config": json.dumps(config)})
    assert json.loads(read_file_header(path).metadata["config"]) == config


def test_a_gguf_file_is_told_by_its_magic_not_its_name(root):
    renamed = write_gguf(root / "misc" / "renamed.safetensors", {"head.modulation": ("F32", (1, 2, 128))},
                         "wan", "Q8_0")
    assert read_file_header(renamed).container == "gguf"


def test_the_planner_offers_no_fp8_storage_for_gguf_experts(root, template):
    from i2v_nodes.runtime.memory import planner

    experts = stand_ins.write_gguf_experts(root, "Q4_K_M")
    gguf = models.handle_for_files({**template, **experts}, device="cuda", weights="fp8")
    assert gguf.weights == "default" and not gguf.fp8_storable
    assert models.handle_for_files(template, device="cuda").fp8_storable  # safetensors experts could be
    shape = RunShape(832, 480, 81)
    assert {weights for weights, _options in planner.ways_to_run(gguf, shape)} == {"default"}
    assert {weights for weights, _options in planner.option_sets(gguf, shape)} == {"default"}


def test_a_wan_gguf_without_its_5d_patch_embedding_is_refused_by_name(root, template):
    """convert.py sets the 5-D patch embedding aside; fix_5d_tensors.py puts it back. Without it:"""
    tensors = gguf_tensor_types(a14b_shapes(), "Q4_K_M")
    tensors.pop("patch_embedding.weight")
    path = write_gguf(root / "unet" / "no-5d-HighNoise-Q4_K_M.gguf", tensors, "wan", "Q4_K_M")
    with pytest.raises(InputError, match=r"no-5d-HighNoise-Q4_K_M\.gguf has no patch_embedding\.weight"):
        models.handle_for_files({**template, "diffusion_model": path})
