"""Pack loading and /object_info."""

from __future__ import annotations

from pathlib import Path

import pytest

from host_stub import Host, WorkflowError, packs
from host_stub.registry import NodeRegistry

PACKS = Path(__file__).parent / "packs"
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_several_packs_load_and_a_broken_one_is_reported(make_host):
    host = make_host("arith", "broken", "second")
    by_name = {load.name: load for load in host.pack_loads}
    assert by_name["arith"].ok and "Add" in by_name["arith"].nodes
    assert by_name["second"].ok and by_name["second"].nodes == ["Negate"]
    assert not by_name["broken"].ok
    assert "broken on purpose" in by_name["broken"].error
    assert host.failed_packs == [by_name["broken"]]
    for name in ("Add", "Negate", "LoadImage", "SaveImage", "PreviewImage"):
        assert name in host.registry


def test_a_folder_without_init_holds_one_pack_per_subfolder():
    names = [p.name for p in packs.discover([PACKS])]
    assert {"arith", "broken", "features", "second"} <= set(names) and names == sorted(names)


def test_a_folder_with_init_is_one_pack():
    assert packs.discover([PACKS / "second"]) == [(PACKS / "second").resolve()]
    # The repository root has an __init__.py: it is one pack, as ComfyUI would see it.
    assert packs.discover([REPO_ROOT]) == [REPO_ROOT]


def test_a_missing_pack_folder_is_a_clear_error(tmp_path):
    with pytest.raises(WorkflowError, match="pack folder not found"):
        Host(packs=[tmp_path / "nope"], output_dir=tmp_path)


def test_a_pack_without_mappings_is_reported(tmp_path):
    pack = tmp_path / "empty_pack"
    pack.mkdir()
    (pack / "__init__.py").write_text("X = 1\n")
    load = packs.load_pack(pack, NodeRegistry())
    assert not load.ok and "NODE_CLASS_MAPPINGS" in load.error


def test_a_pack_cannot_replace_a_core_node(tmp_path, make_host):
    pack = tmp_path / "sneaky"
    pack.mkdir()
    (pack / "__init__.py").write_text(
        "class SaveImage:\n    pass\n\nNODE_CLASS_MAPPINGS = {'SaveImage': SaveImage}\n"
    )
    host = make_host()
    (load,) = host.load_packs([pack])
    assert load.ok and load.nodes == []
    assert host.registry.python_modules["SaveImage"] == "nodes"


def test_packs_are_imported_under_comfyuis_module_names(make_host):
    import sys

    make_host("second")
    name = str((PACKS / "second").resolve()).replace(".", "_x_")
    assert sys.modules[name].NODE_CLASS_MAPPINGS["Negate"].__name__ == "Negate"
    assert f"{name}.nodes" in sys.modules  # the relative import resolved inside the pack


def test_object_info_entry_has_comfyuis_shape(make_host):
    host = make_host("arith", "second")
    info = host.object_info()
    assert info["Add"] == {
        "input": {"required": {"a": ["INT", {"forceInput": True}], "b": ["INT", {"default": 0}]}},
        "input_order": {"required": ["a", "b"]},
        "output": ["INT"],
        "output_is_list": [False],
        "output_name": ["sum"],
        "name": "Add",
        "display_name": "Add",
        "description": "",
        "python_module": "custom_nodes.arith",
        "category": "test",
        "output_node": False,
    }
    negate = info["Negate"]
    assert negate["display_name"] == "Negate (second pack)"
    assert negate["description"] == "Negates an integer."
    assert negate["output_tooltips"] == ["the negated value"]
    assert negate["python_module"] == "custom_nodes.second"
    save = info["SaveImage"]
    assert save["output_node"] is True and save["python_module"] == "nodes" and save["output"] == []
    assert save["input_order"] == {
        "required": ["images", "filename_prefix"],
        "hidden": ["prompt", "extra_pnginfo"],
    }
    assert host.object_info("Negate") == {"Negate": negate}
    assert host.object_info("Nope") == {}


def test_object_info_lists_input_images_for_load_image(make_host, tmp_path):
    host = make_host()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "input" / name).write_bytes(b"x")
    spec = host.object_info("LoadImage")["LoadImage"]["input"]["required"]["image"]
    assert spec == [["a.jpg", "b.png"], {"image_upload": True}]
