"""Model names, handles, safety checks and the tiny-model builder."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.families.registry import I2VGEN_XL
from i2v_nodes.families.toolkit.tiny import TOKENIZER_WORDS, build_clip_tokenizer, build_t5_tokenizer
from i2v_nodes.runtime.loading import describe, models
from i2v_nodes.runtime.loading.models import tiny_model_folder

CPU = torch.device("cpu")


def open_named(name, model_dirs, **options):
    return models.open_model(name, models.LoadOptions(**options), model_dirs, CPU)


def test_tiny_model_is_safetensors_only_and_loads_with_from_pretrained(tiny_path):
    files = [p for p in tiny_path.rglob("*") if p.is_file()]
    assert (tiny_path / "model_index.json").is_file()
    assert any(p.suffix == ".safetensors" for p in files)
    assert not [p for p in files if p.suffix in describe.PICKLE_SUFFIXES]
    index = json.loads((tiny_path / "model_index.json").read_text())
    assert index["_class_name"] == "I2VGenXLPipeline"


def test_tiny_model_build_is_deterministic(tmp_path, tiny_path):
    rebuilt = tiny_model_folder("tiny-i2vgen-xl", tmp_path)

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*.safetensors"))}

    assert digest(rebuilt) == digest(tiny_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_offline_tokenizer_knows_its_words_and_falls_back_to_bytes():
    tokenizer = build_clip_tokenizer()
    known = tokenizer("a cat walking").input_ids
    every_word = tokenizer(" ".join(TOKENIZER_WORDS)).input_ids
    unknown = tokenizer("zyxw").input_ids
    assert len(known) == 2 + 3  # start, three whole words, end
    assert len(unknown) == 2 + 4  # start, one byte each, end
    assert len(every_word) == 2 + len(TOKENIZER_WORDS)  # each listed word is one token
    assert tokenizer.model_max_length == 77


def test_offline_t5_tokenizer_knows_its_words_and_falls_back_to_characters():
    tokenizer = build_t5_tokenizer()
    assert len(tokenizer("a cat walking").input_ids) == 3 + 1  # three whole words, end
    assert len(tokenizer(" ".join(TOKENIZER_WORDS)).input_ids) == len(TOKENIZER_WORDS) + 1
    spelled = tokenizer("zyxw").input_ids
    assert len(spelled) >= 4 + 1 and tokenizer.unk_token_id not in spelled  # one piece per character
    assert tokenizer.model_max_length == 512


def test_handle_reads_parameter_counts_from_headers(tiny_handle, tiny_path):
    pipe = I2VGEN_XL.pipeline_class().from_pretrained(tiny_path)
    for component, count in tiny_handle.params:
        assert count == sum(p.numel() for p in getattr(pipe, component).parameters()), component
    assert tiny_handle.family.name == "i2vgen-xl" and tiny_handle.variant == "i2vgen-xl" and tiny_handle.local
    assert tiny_handle.precision == "fp32" and tiny_handle.vae_precision == "fp32"  # CPU defaults


def test_published_config_counts_the_real_model_without_weights():
    handle = models.describe_published("ali-vilab/i2vgen-xl")
    counts = dict(handle.params)
    assert counts["unet"] == 1_420_469_224  # the published I2VGen-XL UNet
    assert 83_000_000 < counts["vae"] < 85_000_000
    assert 2.4e9 < handle.total_params < 2.5e9


def test_model_list_has_tiny_local_folders_and_hub_ids(tmp_path, tiny_path):
    local = tmp_path / "i2v" / "my-model"
    shutil.copytree(tiny_path, local)
    (tmp_path / "i2v" / "not-a-model").mkdir()
    names = models.list_model_names([tmp_path / "i2v", tmp_path / "diffusers"])
    tiny = list(registry.tiny_builders())  # every family's, in registry order
    assert tiny[:4] == ["tiny-i2vgen-xl", "tiny-wan2.1-i2v", "tiny-wan2.2-i2v-a14b", "tiny-wan2.2-ti2v-5b"]
    assert names[:len(tiny) + 1] == [*tiny, "my-model"]
    assert names[len(tiny) + 1:] == registry.known_hub_ids()
    assert names[len(tiny) + 1:len(tiny) + 6] == [
        "ali-vilab/i2vgen-xl", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers",
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers", "Wan-AI/Wan2.2-TI2V-5B-Diffusers"]
    handle = open_named("my-model", [tmp_path / "i2v"])
    assert handle.source == str(local.resolve())


def test_unknown_model_name(model_dirs):
    with pytest.raises(InputError, match="input 'model': unknown model 'nope'"):
        open_named("nope", model_dirs)


def test_folder_without_model_index(tmp_path):
    (tmp_path / "i2v" / "broken").mkdir(parents=True)
    with pytest.raises(InputError, match="has no model_index.json"):
        open_named("broken", [tmp_path / "i2v"])


def test_pickle_only_weights_are_refused(tmp_path, tiny_path):
    unsafe = tmp_path / "i2v" / "unsafe"
    shutil.copytree(tiny_path, unsafe)
    for weights in (unsafe / "unet").glob("*.safetensors"):
        weights.unlink()
    (unsafe / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    expected = r"input 'model': .* only in pickle format \(diffusion_pytorch_model.bin\)"
    with pytest.raises(InputError, match=expected):
        open_named("unsafe", [tmp_path / "i2v"])


def test_corrupt_safetensors_header(tmp_path, tiny_path):
    broken = tmp_path / "i2v" / "corrupt"
    shutil.copytree(tiny_path, broken)
    for weights in (broken / "vae").glob("*.safetensors"):
        weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(InputError, match="input 'model': .*corrupt safetensors header"):
        open_named("corrupt", [tmp_path / "i2v"])


def test_hub_id_without_local_copy_says_what_to_download(model_dirs, monkeypatch):
    monkeypatch.setattr(models, "_hub_cache_folder", lambda repo_id: None)
    with pytest.raises(InputError, match="huggingface-cli download ali-vilab/i2vgen-xl --local-dir"):
        open_named("ali-vilab/i2vgen-xl", model_dirs)
    handle = open_named("ali-vilab/i2vgen-xl", model_dirs, allow_download=True)
    assert not handle.local and handle.source == "ali-vilab/i2vgen-xl"
    assert handle.param_count("unet") == 1_420_469_224


@pytest.mark.parametrize("options, message", [
    ({"offload": "model"}, "input 'offload': offload 'model' moves weights .* choose 'none'"),
    ({"offload": "bogus"}, "input 'offload': expected one of"),
    ({"precision": "fp8"}, "input 'precision': expected one of"),
    ({"vae_precision": "int4"}, "input 'vae_precision': expected one of"),
    ({"device": "tpu"}, "input 'device': expected one of"),
])
def test_bad_load_options(model_dirs, options, message):
    with pytest.raises(InputError, match=message):
        open_named("tiny-i2vgen-xl", model_dirs, **options)


def test_cuda_request_without_cuda_is_clear(model_dirs):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the refusal only exists without it
    with pytest.raises(InputError, match="input 'device': CUDA was asked for"):
        open_named("tiny-i2vgen-xl", model_dirs, device="cuda")


@pytest.mark.parametrize(("flags", "env", "expected"), [
    (True, "", "bf16"), (False, "", "fp32"), (True, "fp32", "fp32"), (False, "bf16", "bf16")])
def test_auto_precision_on_a_cpu_is_bf16_where_the_cpu_computes_it(monkeypatch, flags, env, expected):
    from i2v_nodes.runtime.loading import precision

    monkeypatch.setattr(precision, "cpu_computes_bf16", lambda: flags)
    monkeypatch.setenv(precision.CPU_PRECISION_ENV, env)
    assert precision.resolve_precision("auto", torch.device("cpu"), "fp16") == expected
    assert precision.resolve_precision("fp32", torch.device("cpu"), "fp16") == "fp32"  # asked: kept
    assert precision.resolve_precision("auto", torch.device("cuda"), "bf16") == "bf16"  # CUDA: the family's
