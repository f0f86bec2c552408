"""Node expansion (dynamic prompts) and ExecutionBlocker, as ComfyUI runs them."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def host(make_host):
    return make_host("arith", "features", "flow")


class Recorder:
    def __init__(self):
        self.events = []

    def node_started(self, node_id, class_type, title):
        self.events.append(("start", node_id))

    def node_progress(self, node_id, value, total):
        pass

    def node_finished(self, node_id, status, seconds):
        self.events.append(("end", node_id, status))

    def node_expanded(self, node_id, class_type, parent_id, display_id):
        self.events.append(("expanded", node_id, class_type, parent_id, display_id))

    def node_blocked(self, node_id, error):
        self.events.append(("blocked", node_id, error))


def repeat_add(node, times=3):
    return {
        "1": node("IntConst", value=5),
        "2": node("RepeatAdd", value=["1", 0], step=2, times=times),
        "3": node("Show", value=["2", 0]),
    }


def test_an_expansion_runs_in_the_prompt_and_feeds_the_expanding_nodes_output(host, node):
    reporter = Recorder()
    result = host.run(repeat_add(node), progress=reporter)
    assert result.ok, result.error
    assert result.ui == {"3": {"values": [11]}}
    children = ["2.0.0.1", "2.0.0.2", "2.0.0.3", "2.0.0.4"]  # ComfyUI's ids: <node>.<call>.<builder>.<n>
    assert result.executed == ["1", *children, "2", "3"]
    assert ("expanded", "2.0.0.1", "IntConst", "2", "2") in reporter.events
    # The expanding node starts once and finishes after its expansion.
    assert reporter.events.index(("end", "2", "ran")) > reporter.events.index(("end", "2.0.0.4", "ran"))
    assert [e for e in reporter.events if e == ("start", "2")] == [("start", "2")]
    records = {r.node_id: r for r in result.nodes}
    assert records["2.0.0.3"].parent_node == "2" and records["2.0.0.3"].display_node == "2"
    assert records["2.0.0.3"].class_type == "Add" and records["2.0.0.3"].status == "ran"
    assert host.run(repeat_add(node)).executed == []


def test_an_expansion_that_grows_reuses_its_unchanged_nodes(host, node):
    host.run(repeat_add(node, times=3))
    result = host.run(repeat_add(node, times=4))
    assert result.ui == {"3": {"values": [13]}}
    assert result.executed == ["2.0.0.5", "2", "3"]  # 2.0.0.1-4 come from the expansion's cache


def test_nested_expansions_get_nested_ids(host, node):
    result = host.run({"2": node("Countdown", n=3, total=0), "3": node("Show", value=["2", 0])})
    assert result.ui == {"3": {"values": [6]}}
    assert result.executed == ["2.0.0.1.0.0.1.0.0.1", "2.0.0.1.0.0.1", "2.0.0.1", "2", "3"]
    records = {r.node_id: r for r in result.nodes}
    assert records["2.0.0.1.0.0.1"].parent_node == "2.0.0.1"
    assert records["2.0.0.1.0.0.1"].display_node == "2"


def test_output_nodes_inside_an_expansion_report_their_ui_with_comfyuis_meta(host, node):
    result = host.run({"1": node("IntConst", value=5), "2": node("ShowInside", value=["1", 0])})
    assert result.ok, result.error
    assert result.history["outputs"] == {"2.0.0.2": {"values": [50]}}
    assert result.history["meta"]["2.0.0.2"] == {
        "node_id": "2.0.0.2",
        "display_node": "2",
        "parent_node": "2",
        "real_node_id": "2",
    }
    assert result.output("2") == 50


def test_a_dynamic_cycle_is_blamed_on_the_expanding_node(host, node):
    prompt = {
        "1": node("IntConst", value=5),
        "2": node("CycleExpand", value=["1", 0]),
        "3": node("Show", value=["2", 0]),
    }
    result = host.run(prompt)
    assert result.status == "error"
    assert result.error["node_id"] == "2" and result.error["node_type"] == "CycleExpand"
    assert result.error["exception_type"] == "graph.DependencyCycleError"
    assert result.history["status"]["messages"][-1][0] == "execution_error"


def test_an_expansion_reusing_a_node_id_fails_the_expanding_node(host, node):
    prompt = {
        "1": node("IntConst", value=5),
        "2": node("ReuseId", value=["1", 0], taken="1"),
        "3": node("Show", value=["2", 0]),
    }
    result = host.run(prompt)
    assert result.error["node_id"] == "2"
    assert result.error["exception_type"] == "execution.DuplicateNodeError"
    assert "duplicate node 1" in result.error["exception_message"]


def test_a_failure_inside_an_expansion_names_the_node_of_the_prompt(host, node):
    prompt = {
        "1": node("IntConst", value=5),
        "2": node("ExpandBoom", value=["1", 0]),
        "3": node("Show", value=["2", 0]),
    }
    result = host.run(prompt)
    assert result.status == "error"
    assert result.error["node_id"] == "2" and result.error["node_type"] == "ExpandBoom"
    assert result.error["exception_message"].startswith("boom at 5")
    assert result.error["executed"] == ["1", "2.0.0.1"]
    assert {r.node_id: r.status for r in result.nodes}["2.0.0.2"] == "failed"


def test_mixed_returns_over_a_list(host, node):
    prompt = {
        "1": node("MakeList", count=3),
        "2": node("MaybeExpand", value=["1", 0]),
        "3": node("SumList", values=["2", 0]),
        "4": node("SumList", values=["2", 1]),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    assert result.node_outputs["2"] == [[1, 4, 6], [-1, -1, -1]]  # item 1 direct, items 2 and 3 expanded
    assert result.ui["3"] == {"total": [11], "count": [3]}
    assert {"2.1.0.2", "2.2.0.2"} <= set(result.executed)  # one builder per call: <node>.<call index>...


def test_graph_builder_is_importable_with_comfyuis_behaviour(host):
    with host.active():
        utils = importlib.import_module("comfy_execution.graph_utils")
        utils.GraphBuilder.set_default_prefix("7", 2)
        first, second = utils.GraphBuilder(), utils.GraphBuilder()
        assert (first.prefix, second.prefix) == ("7.2.0.", "7.2.1.")
        a = first.node("IntConst", value=1)
        assert first.node("IntConst", "1") is a and a.id == "7.2.0.1"
        b = first.node("Add", a=a.out(0), b=2)
        first.replace_node_output("1", 0, 9)
        assert b.inputs == {"a": 9, "b": 2}
        b.set_override_display_id("3")
        assert first.finalize()["7.2.0.2"] == {
            "class_type": "Add",
            "inputs": {"a": 9, "b": 2},
            "override_display_id": "3",
        }
        graph, outputs = utils.add_graph_prefix(
            {"x": {"class_type": "Add", "inputs": {"a": ["y", 0]}}}, [["x", 0], 4], "p."
        )
        assert graph == {"p.x": {"class_type": "Add", "inputs": {"a": ["p.y", 0]}}} and outputs == (
            ["p.x", 0],
            4,
        )
        assert utils.is_link(["1", 0]) and not utils.is_link(["1", "0"])
        graph_module = importlib.import_module("comfy_execution.graph")
        assert graph_module.ExecutionBlocker is utils.ExecutionBlocker
        assert graph_module.get_input_info(host.registry.classes["Add"], "b") == (
            "INT",
            "required",
            {"default": 0},
        )


def blocking(node, block, message=""):
    return {
        "1": node("IntConst", value=5),
        "2": node("Gate", value=["1", 0], block=block, message=message),
        "3": node("Show", value=["2", 0]),
    }


def test_a_silent_blocker_skips_the_output_node_and_the_run_succeeds(host, node):
    reporter = Recorder()
    result = host.run(blocking(node, True), progress=reporter)
    assert result.ok and result.ui == {}
    assert result.executed == ["1", "2", "3"]  # ComfyUI counts a blocked node as executed
    records = {r.node_id: r for r in result.nodes}
    assert records["3"].blocked and records["3"].error is None
    assert not [e for e in reporter.events if e[0] == "blocked"]
    assert host.run(blocking(node, False)).ui == {"3": {"values": [5]}}


def test_a_blocker_with_a_message_reports_an_error_naming_the_blocked_node(host, node):
    reporter = Recorder()
    result = host.run(blocking(node, True, "no entry"), progress=reporter)
    assert result.ok and result.ui == {}  # as in ComfyUI the run goes on; the history has no error
    assert [e for e, _ in result.history["status"]["messages"]][-1] == "execution_success"
    [(_kind, node_id, error)] = [e for e in reporter.events if e[0] == "blocked"]
    assert node_id == "3"
    assert error["node_id"] == "3" and error["node_type"] == "Show"
    assert error["exception_type"] == "ExecutionBlocked"
    assert error["exception_message"] == "Execution Blocked: no entry"
    assert {r.node_id: r for r in result.nodes}["3"].error == "Execution Blocked: no entry"


def test_a_blocker_in_a_list_blocks_only_its_item(host, node):
    prompt = {
        "1": node("MakeList", count=3),
        "2": node("IsEven", value=["1", 0]),
        "3": node("Gate", value=["1", 0], block=["2", 0], message=""),
        "4": node("Double", value=["3", 0]),
        "5": node("Show", value=["4", 0]),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    assert result.ui["5"] == {"values": [2, 6]}  # item 2 (even) was blocked on its way


def test_a_link_to_a_missing_node_stops_only_the_outputs_it_reaches(host, node):
    prompt = {
        "1": node("IntConst", value=5),
        "2": node("Add", a=["1", 0], b=["gone", 0]),
        "3": node("Show", value=["2", 0]),
        "4": node("Show", value=["1", 0]),
    }
    result = host.run(prompt)
    assert result.ok and result.ui == {"4": {"values": [5]}}  # as in ComfyUI: the other output runs
    [reason] = result.validation.node_errors["2"]["errors"]
    assert reason["type"] == "exception_during_inner_validation" and reason["details"] == "'gone'"
    assert result.validation.node_errors["2"]["dependent_outputs"] == ["3"]
