"""V3 nodes (comfy_api.latest io.ComfyNode) and the import surface packs use (comfy_api, comfy_types)."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.fixture
def host(make_host):
    return make_host("arith", "features", "v3nodes")


@pytest.fixture
def pack():
    return next(m for name, m in sys.modules.items() if name.endswith("v3nodes") and hasattr(m, "CALLS"))


def scale(node, **inputs):
    return {
        "1": node("IntConst", value=5),
        "2": node("V3Scale", value=["1", 0], factor=2.5, mode="floor", **inputs),
        "3": node("Show", value=["2", 0]),
    }


def test_a_v3_pack_registers_its_extensions_nodes(host):
    load = next(load for load in host.pack_loads if load.name == "v3nodes")
    assert load.ok and load.nodes[:3] == ["V3Scale", "V3Show", "V3AsyncDouble"]
    assert host.registry.display_name("V3Scale") == "V3 Scale"
    assert host.registry.display_name("V3Show") == "V3Show"  # no display name in the schema


def test_v3_object_info_has_comfyuis_shape(host):
    assert host.object_info("V3Scale")["V3Scale"] == {
        "input": {
            "required": {
                "value": ["INT", {"forceInput": True}],
                "factor": [
                    "FLOAT",
                    {"tooltip": "times what", "default": 2.0, "min": 0.0, "max": 10.0, "step": 0.5},
                ],
                "mode": ["COMBO", {"default": "round", "multiselect": False, "options": ["round", "floor"]}],
            },
            "optional": {"negate": ["BOOLEAN", {"default": False, "label_on": "yes", "label_off": "no"}]},
            "hidden": {"unique_id": ["UNIQUE_ID"]},
        },
        "input_order": {
            "required": ["value", "factor", "mode"],
            "optional": ["negate"],
            "hidden": ["unique_id"],
        },
        "output": ["INT"],
        "output_is_list": [False],
        "output_name": ["scaled"],
        "output_tooltips": ["the result"],
        "name": "V3Scale",
        "display_name": "V3 Scale",
        "description": "Scales an integer.",
        "python_module": "custom_nodes.v3nodes",
        "category": "test/v3",
        "output_node": False,
        "deprecated": False,
        "experimental": False,
        "api_node": False,
    }
    save = host.object_info("V3SaveVideo")["V3SaveVideo"]
    assert save["output_node"] is True and save["output"] == [] and save["display_name"] == "V3 Save Video"
    assert save["input"]["hidden"] == {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]}
    assert host.object_info("V3Show")["V3Show"]["display_name"] is None  # as ComfyUI serves it


def test_v3_nodes_run_with_their_hidden_inputs_on_the_class(host, node, pack):
    pack.CALLS.clear()
    prompt = {**scale(node), "4": node("V3Show", value=["2", 0])}
    result = host.run(prompt)
    assert result.ok, result.error
    assert result.ui == {"3": {"values": [12]}, "4": {"text": ["12 from ['1', '2', '3', '4']"]}}
    assert pack.CALLS == [("V3Scale", "2")]
    assert host.run({**scale(node, negate=True)}).ui == {"3": {"values": [-12]}}


def test_v3_validate_inputs_and_fingerprint_inputs(host, node):
    check = host.validate({"2": node("V3Checked", value=13, salt=0), "3": node("Show", value=["2", 0])})
    assert not check.ok
    assert check.node_errors["2"]["errors"][0]["details"] == "value - 13 is unlucky"
    steady = {"2": node("V3Checked", value=4, salt=2), "3": node("Show", value=["2", 0])}
    assert host.run(steady).executed == ["2", "3"] and host.run(steady).executed == []
    changing = {"2": node("V3Checked", value=4, salt=1), "3": node("Show", value=["2", 0])}
    assert host.run(changing).executed == ["2", "3"] and host.run(changing).executed == ["2", "3"]


def test_v3_lazy_inputs_and_async_execute(host, node):
    prompt = {
        "1": node("IntConst", value=5),
        "b": node("Boom", value=["1", 0]),
        "d": node("V3AsyncDouble", value=["1", 0], seconds=0.05),
        "2": node("V3Pick", use_a=True, a=["d", 0], b=["b", 0]),
        "3": node("Show", value=["2", 0]),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    assert result.ui == {"3": {"values": [10]}} and "b" not in result.executed


def test_v3_expansion_and_block_execution(host, node):
    expanded = host.run(
        {
            "1": node("IntConst", value=5),
            "2": node("V3Expand", value=["1", 0]),
            "3": node("Show", value=["2", 0]),
        }
    )
    assert expanded.ui == {"3": {"values": [30]}} and expanded.executed == [
        "1",
        "2.0.0.1",
        "2.0.0.2",
        "2",
        "3",
    ]
    blocked = host.run(
        {
            "1": node("IntConst", value=5),
            "2": node("V3Block", value=["1", 0]),
            "3": node("Show", value=["2", 0]),
        }
    )
    assert blocked.ok and blocked.ui == {}
    assert {r.node_id: r for r in blocked.nodes}["3"].error == "Execution Blocked: stopped by V3Block"


@pytest.mark.parametrize("use_sync", [False, True])
def test_comfy_api_set_progress_reaches_the_reporter(host, node, use_sync):
    steps = []

    class Reporter:
        def node_started(self, *args):
            pass

        def node_progress(self, node_id, value, total):
            steps.append((node_id, value, total))

        def node_finished(self, *args):
            pass

    prompt = {
        "1": node("IntConst", value=5),
        "2": node("V3Progress", value=["1", 0], use_sync=use_sync),
        "3": node("Show", value=["2", 0]),
    }
    assert host.run(prompt, progress=Reporter()).ok
    assert steps == [("2", 1, 3), ("2", 2, 3), ("2", 3, 3)]


def test_v3_video_types_write_and_read_an_mp4(host, node, tmp_path):
    prompt = {
        "g": node("Gradient", width=32, height=16, batch=4),
        "v": node("V3MakeVideo", images=["g", 0], fps=8.0),
        "s": node("V3SaveVideo", video=["v", 0], filename_prefix="video/clip", format="auto", codec="auto"),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    saved = {"filename": "clip_00001_.mp4", "subfolder": "video", "type": "output"}
    assert result.ui == {"s": {"images": [saved], "animated": [True]}}
    path = tmp_path / "output" / "video" / "clip_00001_.mp4"
    with host.active():
        video = importlib.import_module("comfy_api.input_impl").VideoFromFile(str(path))
        assert video.get_dimensions() == (32, 16)
        components = video.get_components()
    assert tuple(components.images.shape) == (4, 16, 32, 3) and components.frame_rate == 8


def test_the_import_surface_packs_use(host):
    with host.active():
        types_module = importlib.import_module("comfy.comfy_types")
        assert importlib.import_module("comfy.comfy_types.node_typing") is types_module
        io_type = types_module.IO
        assert not (io_type.ANY != "IMAGE") and not (io_type.NUMBER != "INT") and io_type.INT != "FLOAT"
        assert {"IO", "ComfyNodeABC", "InputTypeDict", "CheckLazyMixin", "FileLocator"} <= set(
            types_module.__all__
        )
        latest = importlib.import_module("comfy_api.latest")
        assert importlib.import_module("comfy_api.latest._io") is latest.io
        assert latest.io.Int.Input("x").get_io_type() == "INT" and latest.io.AnyType.io_type == "*"
        for version in ("v0_0_2", "v0_0_1"):
            module = importlib.import_module(f"comfy_api.{version}")
            assert module.ComfyAPI.VERSION == version[1:].replace("_", ".")
            assert module.ComfyExtension is latest.ComfyExtension and module.io is latest.io
        assert importlib.import_module("comfy.cli_args").args.disable_metadata is False
        utils = importlib.import_module("comfy_execution.utils")
        with utils.CurrentNodeContext("p", "7", 0):
            assert utils.get_executing_context() == ("p", "7", 0)
        assert utils.get_executing_context() is None
    assert "comfy_api" not in sys.modules and "comfy_execution" not in sys.modules
