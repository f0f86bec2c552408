"""UI-format workflows converted the way the ComfyUI frontend converts them (graphToPrompt)."""

from __future__ import annotations

from typing import Any

import pytest

from host_stub import ConversionError
from host_stub.ui_widgets import widget_layout


def ui_node(
    node_id: int,
    node_type: str,
    widgets: list[Any] | None = None,
    inputs: list[tuple] = (),
    outputs: list[tuple] = (),
    mode: int = 0,
    title: str | None = None,
) -> dict[str, Any]:
    """inputs: (name, type, link[, widget name]); outputs: (name, type, [link ids])."""
    entry: dict[str, Any] = {
        "id": node_id,
        "type": node_type,
        "pos": [0, 0],
        "size": [100, 50],
        "flags": {},
        "order": 0,
        "mode": mode,
        "properties": {},
        "inputs": [
            {"name": i[0], "type": i[1], "link": i[2], **({"widget": {"name": i[3]}} if len(i) > 3 else {})}
            for i in inputs
        ],
        "outputs": [{"name": o[0], "type": o[1], "links": o[2]} for o in outputs],
    }
    if widgets is not None:
        entry["widgets_values"] = widgets
    if title is not None:
        entry["title"] = title
    return entry


def ui_workflow(nodes: list[dict[str, Any]], links: list[list[Any]]) -> dict[str, Any]:
    return {
        "last_node_id": max(n["id"] for n in nodes),
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


SAMPLER_VALUES = [
    42,
    "randomize",
    30,
    6.5,
    "ddim",
    "fixed",
    "",
    9,
    "increment",
    "a dog",
    False,
    "t",
    0.8,
    "fixed",
]


def sampler_graph(sampler_widgets=SAMPLER_VALUES, sampler_inputs=None, extra_nodes=(), extra_links=()):
    """ModelSource(1) -> Sampler(2).model and .frames."""
    source = ui_node(
        1, "ModelSource", ["tiny"], outputs=[("MODEL_ISH", "MODEL_ISH", [1]), ("INT", "INT", [2])]
    )
    inputs = sampler_inputs or [("model", "MODEL_ISH", 1), ("frames", "INT", 2)]
    sampler = ui_node(
        2, "Sampler", sampler_widgets, inputs=inputs, outputs=[("INT", "INT", []), ("STRING", "STRING", [])]
    )
    links = [[1, 1, 0, 2, 0, "MODEL_ISH"], [2, 1, 1, 2, 1, "INT"], *extra_links]
    return ui_workflow([source, sampler, *extra_nodes], links)


def test_widget_layout_follows_the_frontend(host):
    info = host.object_info("Sampler")["Sampler"]
    layout = [(w.name, w.kind) for w in widget_layout(info)]
    assert layout == [
        ("seed", "value"),
        ("seed", "control"),  # seed gets a control value by its name
        ("steps", "value"),
        ("cfg", "value"),
        ("sampler", "value"),
        ("sampler", "control"),
        ("sampler", "filter"),  # a combo gets two
        ("variation", "value"),
        ("variation", "control"),  # explicit control_after_generate
        # frames is forceInput: no widget
        ("prompt", "value"),
        ("denoise", "value"),
        ("tags", "value"),  # optional widgets last
        ("strength", "value"),
        ("strength", "control"),  # a FLOAT gets one when it asks for it
    ]


def test_positional_widget_values_skip_the_frontend_only_ones(host):
    prompt = host.convert(sampler_graph())
    assert prompt["2"] == {
        "inputs": {
            "seed": 42,
            "steps": 30,
            "cfg": 6.5,
            "sampler": "ddim",
            "variation": 9,
            "prompt": "a dog",
            "denoise": False,
            "tags": "t",
            "strength": 0.8,
            "model": ["1", 0],
            "frames": ["1", 1],
        },
        "class_type": "Sampler",
        "_meta": {"title": "Test Sampler"},
    }
    assert prompt["1"] == {
        "inputs": {"name": "tiny"},
        "class_type": "ModelSource",
        "_meta": {"title": "ModelSource"},
    }


def test_missing_widget_values_take_the_defaults(host):
    prompt = host.convert(sampler_graph(sampler_widgets=[42, "fixed", 30]))
    inputs = prompt["2"]["inputs"]
    assert (inputs["cfg"], inputs["sampler"], inputs["variation"], inputs["prompt"]) == (
        7.5,
        "euler",
        5,
        "a cat",
    )
    assert (inputs["denoise"], inputs["tags"], inputs["strength"]) == (True, "none", 0.5)
    assert host.convert(sampler_graph(sampler_widgets=None))["2"]["inputs"]["seed"] == 0


def test_legacy_values_saved_for_force_input_widgets_are_dropped(host):
    # Older frontends kept a value for forceInput inputs too: Add saved [a, b] instead of [b].
    wf = ui_workflow(
        [
            ui_node(1, "IntConst", [4], outputs=[("INT", "INT", [1])]),
            ui_node(2, "Add", [7, 3], inputs=[("a", "INT", 1)]),
        ],
        [[1, 1, 0, 2, 0, "INT"]],
    )
    assert host.convert(wf)["2"]["inputs"] == {"b": 3, "a": ["1", 0]}
    # The frontend only migrates when the count matches its own tally exactly.
    wf["nodes"][1]["widgets_values"] = [7, 3, 1]
    assert host.convert(wf)["2"]["inputs"]["b"] == 7


def test_the_upload_value_after_load_image(host, tmp_path):
    (tmp_path / "input" / "pic.png").write_bytes(b"")
    wf = ui_workflow(
        [
            ui_node(
                1, "LoadImage", ["pic.png", "image"], outputs=[("IMAGE", "IMAGE", [1]), ("MASK", "MASK", [])]
            ),
            ui_node(2, "PreviewImage", [], inputs=[("images", "IMAGE", 1)]),
        ],
        [[1, 1, 0, 2, 0, "IMAGE"]],
    )
    prompt = host.convert(wf)
    assert prompt["1"]["inputs"] == {"image": "pic.png"}
    assert prompt["2"]["inputs"] == {"images": ["1", 0]}
    assert prompt["1"]["_meta"]["title"] == "Load Image"


def test_a_linked_widget_input_takes_the_link(host):
    steps = ui_node(3, "IntConst", [12], outputs=[("INT", "INT", [3])])
    inputs = [("model", "MODEL_ISH", 1), ("frames", "INT", 2), ("steps", "INT", 3, "steps")]
    prompt = host.convert(
        sampler_graph(sampler_inputs=inputs, extra_nodes=[steps], extra_links=[[3, 3, 0, 2, 2, "INT"]])
    )
    assert prompt["2"]["inputs"]["steps"] == ["3", 0]
    assert prompt["2"]["inputs"]["seed"] == 42  # the other widgets keep their positions


def test_a_primitive_node_pushes_its_value_into_the_widget(host):
    primitive = ui_node(3, "PrimitiveNode", [123, "fixed"], outputs=[("INT", "INT", [3])])
    primitive["outputs"][0]["widget"] = {"name": "seed"}
    inputs = [("model", "MODEL_ISH", 1), ("frames", "INT", 2), ("seed", "INT", 3, "seed")]
    prompt = host.convert(
        sampler_graph(sampler_inputs=inputs, extra_nodes=[primitive], extra_links=[[3, 3, 0, 2, 2, "INT"]])
    )
    assert prompt["2"]["inputs"]["seed"] == 123
    assert "3" not in prompt


def test_notes_are_dropped(host):
    notes = [ui_node(5, "Note", ["some text"]), ui_node(6, "MarkdownNote", ["# title"])]
    prompt = host.convert(sampler_graph(extra_nodes=notes))
    assert set(prompt) == {"1", "2"}


def test_a_reroute_passes_its_link_through(host):
    wf = ui_workflow(
        [
            ui_node(1, "IntConst", [4], outputs=[("INT", "INT", [1])]),
            ui_node(2, "Reroute", None, inputs=[("", "*", 1)], outputs=[("", "INT", [2])]),
            ui_node(3, "Reroute", None, inputs=[("", "*", 2)], outputs=[("", "INT", [3])]),
            ui_node(4, "Show", [], inputs=[("value", "INT", 3)]),
        ],
        [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "*"], [3, 3, 0, 4, 0, "INT"]],
    )
    prompt = host.convert(wf)
    assert set(prompt) == {"1", "4"}
    assert prompt["4"]["inputs"] == {"value": ["1", 0]}


def test_a_muted_node_is_dropped_with_the_links_to_it(host):
    graph = sampler_graph()
    graph["nodes"][0]["mode"] = 2
    prompt = host.convert(graph)
    assert set(prompt) == {"2"}
    assert "model" not in prompt["2"]["inputs"] and "frames" not in prompt["2"]["inputs"]
    assert host.validate(graph).node_errors["2"]["errors"][0]["type"] == "required_input_missing"


def bypass_graph(middle_type: str, middle_inputs, middle_outputs, middle_widgets, sampler_links):
    source = ui_node(
        1, "ModelSource", ["tiny"], outputs=[("MODEL_ISH", "MODEL_ISH", [1]), ("INT", "INT", [2])]
    )
    middle = ui_node(2, middle_type, middle_widgets, inputs=middle_inputs, outputs=middle_outputs, mode=4)
    sampler = ui_node(3, "Sampler", SAMPLER_VALUES, inputs=[("model", "MODEL_ISH", 3), ("frames", "INT", 4)])
    links = [[1, 1, 0, 2, 0, "MODEL_ISH"], [2, 1, 1, 2, 1, "INT"], *sampler_links]
    return ui_workflow([source, middle, sampler], links)


def test_a_bypassed_node_hands_on_its_input_of_the_same_type(host):
    # Passthrough returns (INT, MODEL_ISH) from inputs (model, frames): the types sit in other slots.
    wf = bypass_graph(
        "Passthrough",
        [("model", "MODEL_ISH", 1), ("frames", "INT", 2)],
        [("INT", "INT", [4]), ("MODEL_ISH", "MODEL_ISH", [3])],
        [2],
        [[3, 2, 1, 3, 0, "MODEL_ISH"], [4, 2, 0, 3, 1, "INT"]],
    )
    prompt = host.convert(wf)
    assert "2" not in prompt
    assert prompt["3"]["inputs"]["model"] == ["1", 0]
    assert prompt["3"]["inputs"]["frames"] == ["1", 1]


def test_a_bypassed_node_prefers_the_same_slot_when_the_type_fits(host):
    # Add's inputs are a (INT socket) and b (INT widget): output 0 maps to input 0, `a`.
    wf = ui_workflow(
        [
            ui_node(1, "IntConst", [4], outputs=[("INT", "INT", [1])]),
            ui_node(2, "IntConst", [9], outputs=[("INT", "INT", [2])]),
            ui_node(
                3,
                "Add",
                [1],
                inputs=[("a", "INT", 1), ("b", "INT", 2, "b")],
                outputs=[("sum", "INT", [3])],
                mode=4,
            ),
            ui_node(4, "Show", [], inputs=[("value", "INT", 3)]),
        ],
        [[1, 1, 0, 3, 0, "INT"], [2, 2, 0, 3, 1, "INT"], [3, 3, 0, 4, 0, "INT"]],
    )
    assert host.convert(wf)["4"]["inputs"] == {"value": ["1", 0]}


def test_a_bypassed_node_without_a_matching_input_passes_nothing(host):
    wf = ui_workflow(
        [
            ui_node(1, "IntConst", [4], outputs=[("INT", "INT", [1])]),
            ui_node(
                2, "ToFloat", [], inputs=[("value", "INT", 1)], outputs=[("FLOAT", "FLOAT", [2])], mode=4
            ),
            ui_node(3, "Sampler", SAMPLER_VALUES, inputs=[("cfg", "FLOAT", 2, "cfg")]),
        ],
        [[1, 1, 0, 2, 0, "INT"], [2, 2, 0, 3, 0, "FLOAT"]],
    )
    # No FLOAT input on the bypassed node: the link resolves to nothing and the widget value stays.
    assert host.convert(wf)["3"]["inputs"]["cfg"] == 6.5


def test_list_widget_values_are_wrapped_and_unwrapped_at_validation(host):
    graph = sampler_graph()
    graph["nodes"][1]["widgets_values"][9] = ["a", "b"]
    prompt = host.convert(graph)
    assert prompt["2"]["inputs"]["prompt"] == {"__value__": ["a", "b"]}
    result = host.run(graph)
    assert result.ok and result.prompt["2"]["inputs"]["prompt"] == "['a', 'b']"  # then str() as a STRING


def test_titles_become_meta_titles(host):
    graph = sampler_graph()
    graph["nodes"][1]["title"] = "My sampler"
    assert host.convert(graph)["2"]["_meta"] == {"title": "My sampler"}


def test_links_as_objects_are_read_too(host):
    graph = sampler_graph()
    graph["links"] = [
        dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link, strict=True))
        for link in graph["links"]
    ]
    assert host.convert(graph)["2"]["inputs"]["model"] == ["1", 0]


def test_an_unknown_node_type_is_kept_for_validation_to_report(host):
    graph = sampler_graph(extra_nodes=[ui_node(9, "NotInstalled", [1, 2])])
    assert host.convert(graph)["9"]["class_type"] == "NotInstalled"
    result = host.validate(graph)
    assert result.error["type"] == "invalid_prompt" and "NotInstalled" in result.error["message"]


def test_a_link_from_a_missing_node_cannot_be_converted(host):
    graph = sampler_graph()
    graph["links"][0][1] = 77
    with pytest.raises(ConversionError, match="node #77, which does not exist"):
        host.convert(graph)


def test_subgraphs_are_refused_clearly(host):
    graph = sampler_graph(extra_nodes=[ui_node(9, "a1b2-uuid", [])])
    graph["definitions"] = {"subgraphs": [{"id": "a1b2-uuid", "nodes": []}]}
    with pytest.raises(ConversionError, match="subgraph"):
        host.convert(graph)


def test_an_api_workflow_passes_through(host, chain):
    assert host.convert(chain) == chain


def test_running_from_ui_format_embeds_the_workflow(host):
    hidden = ui_node(7, "Hidden", ["x"])
    wf = ui_workflow([hidden], [])
    result = host.run(wf)
    assert result.ui["7"]["has_workflow"] == [True]
    assert result.history["prompt"][3] == {"extra_pnginfo": {"workflow": wf}}
    # As in ComfyUI, extra_pnginfo is not part of the cache key: the same node is not run again...
    assert host.run(host.convert(wf)).executed == []
    host.free(free_memory=True)
    api = host.run(host.convert(wf))  # ...until the cache is freed
    assert api.ui["7"]["has_workflow"] == [False]


def test_overrides_are_mirrored_into_the_embedded_workflow(host):
    result = host.run(sampler_graph(), overrides=["Test Sampler.steps=44", "2.prompt=a fox"])
    assert result.ok
    assert result.ui["2"]["text"][0].split("|")[2] == "44"
    embedded = result.history["prompt"][3]["extra_pnginfo"]["workflow"]["nodes"][1]["widgets_values"]
    assert embedded[2] == 44 and embedded[9] == "a fox"
