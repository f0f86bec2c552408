"""Execution: what runs and in which order, lazy inputs, lists, errors, hidden inputs, interrupts."""

from __future__ import annotations

import threading

import pytest


class Recorder:
    """A progress reporter that keeps every call."""

    def __init__(self):
        self.events = []

    def node_started(self, node_id, class_type, title):
        self.events.append(("start", node_id))

    def node_progress(self, node_id, value, total):
        self.events.append(("progress", node_id, value, total))

    def node_finished(self, node_id, status, seconds):
        self.events.append(("end", node_id, status))


def test_only_outputs_and_their_ancestors_run_in_dependency_order(host, node):
    prompt = {
        "5": node("Show", value=["4", 0]),
        "4": node("Add", a=["3", 0], b=1),
        "3": node("IntConst", value=2),
        "9": node("IntConst", value=9),
        "8": node("Boom", value=["9", 0]),
    }
    result = host.run(prompt)
    assert result.ok and result.executed == ["3", "4", "5"]
    assert result.ui == {"5": {"values": [3]}}
    assert result.output("4") == 3
    assert [r.node_id for r in result.nodes] == ["3", "4", "5"] and all(
        r.status == "ran" for r in result.nodes
    )


def test_lazy_inputs_only_evaluate_the_branch_asked_for(host, node):
    prompt = {
        "1": node("IntConst", value=4),
        "2": node("Boom", value=["1", 0]),
        "3": node("Add", a=["1", 0], b=10),
        "4": node("Switch", use_a=False, a=["2", 0], b=["3", 0]),
        "5": node("Show", value=["4", 0]),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    assert result.ui["5"] == {"values": [14]}
    assert "2" not in result.executed  # the failing branch was never needed
    assert {r.node_id: r.status for r in result.nodes}["2"] == "skipped"
    prompt["4"]["inputs"]["use_a"] = True
    assert host.run(prompt).error["node_id"] == "2"


def test_lists_map_over_plain_nodes_and_arrive_whole_with_input_is_list(host, node):
    prompt = {
        "1": node("MakeList", count=3),
        "2": node("Double", value=["1", 0]),
        "3": node("SumList", values=["2", 0]),
        "4": node("Show", value=["1", 1]),
    }
    result = host.run(prompt)
    assert result.ok
    assert result.node_outputs["1"] == [[1, 2, 3], [3]]
    assert result.node_outputs["2"] == [[2, 4, 6]]  # Double ran once per item
    assert result.ui["3"] == {"total": [12], "count": [3]}  # SumList got the whole list once
    assert result.ui["4"] == {"values": [3]}


def test_an_execution_error_has_comfyuis_shape_and_stops_the_run(host, node, tmp_path):
    prompt = {
        "10": node("SaveImage", images=["11", 0], filename_prefix="kept"),
        "11": node("Gradient", width=4, height=2, batch=1),
        "1": node("IntConst", value=5),
        "2": node("Boom", value=["1", 0]),
        "3": node("Show", value=["2", 0]),
        "4": node("IntConst", value=6),
        "6": node("Add", a=["4", 0], b=1),
        "5": node("Show", value=["6", 0]),
    }
    result = host.run(prompt, prompt_id="p1")
    assert result.status == "error"
    error = result.error
    assert set(error) == {
        "prompt_id",
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "traceback",
        "current_inputs",
        "current_outputs",
    }
    assert (error["prompt_id"], error["node_id"], error["node_type"]) == ("p1", "2", "Boom")
    assert error["exception_message"] == "boom at 5\n" and error["exception_type"] == "ValueError"
    assert error["current_inputs"] == {"value": [5]}
    assert any("boom" in line for line in error["traceback"])
    assert sorted(error["executed"]) == ["1", "10", "11"] and sorted(error["current_outputs"]) == sorted(
        prompt
    )
    assert result.executed == ["11", "10", "1"]  # the first failure stops the prompt: 4, 6 and 5 never run
    # Outputs written before the failure are kept, and reported.
    assert (tmp_path / "output" / "kept_00001_.png").is_file()
    assert result.files == [tmp_path / "output" / "kept_00001_.png"]
    status = result.history["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    assert [m[0] for m in status["messages"]] == ["execution_start", "execution_cached", "execution_error"]
    assert status["messages"][2][1]["node_id"] == "2" and "timestamp" in status["messages"][2][1]
    assert result.history["outputs"] == {"10": result.ui["10"]}


def test_history_entry_has_comfyuis_shape(host, chain):
    result = host.run(chain, prompt_id="abc")
    entry = result.history
    number, prompt_id, prompt, extra_data, to_execute = entry["prompt"]
    assert isinstance(number, int) and prompt_id == "abc" and prompt == result.prompt
    assert extra_data == {} and to_execute == ["3"]
    assert entry["outputs"] == {"3": {"values": [8]}}
    assert entry["meta"] == {
        "3": {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}
    }
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]
    assert result.history_response() == {"abc": entry}


def test_a_reporter_with_message_gets_the_status_messages_as_they_happen(host, node, chain):
    class Live(Recorder):
        def message(self, event, data):
            self.events.append((event, data))

    live = Live()
    result = host.run(chain, prompt_id="live", progress=live)
    kinds = [e[0] for e in live.events]
    assert kinds == ["execution_start", "execution_cached", *["start", "end"] * 3, "execution_success"]
    sent = [[e[0], e[1]] for e in live.events if e[0].startswith("execution_")]
    assert sent == result.history["status"]["messages"]  # the same dicts, timestamps included
    assert all("timestamp" in data and data["prompt_id"] == "live" for _, data in sent)

    failing = Live()
    broken = {
        "1": node("IntConst", value=1),
        "2": node("Boom", value=["1", 0]),
        "3": node("Show", value=["2", 0]),
    }
    assert host.run(broken, progress=failing).status == "error"
    error_at = [e[0] for e in failing.events].index("execution_error")
    assert failing.events.index(("start", "2")) < error_at and "execution_success" not in failing.events


def test_hidden_inputs_are_filled(host, node):
    result = host.run({"7": node("Hidden", text="x"), "8": node("IntConst", value=1)})
    assert result.ui["7"] == {"unique_id": ["7"], "prompt_ids": [["7", "8"]], "has_workflow": [False]}


def test_nodes_run_in_inference_mode(host, node):
    result = host.run(
        {"1": node("Gradient", width=3, height=2, batch=2), "2": node("ImageSize", image=["1", 0])}
    )
    assert result.ui["2"]["shape"] == [[2, 2, 3, 3]] and result.ui["2"]["inference_mode"] == [True]


def test_progress_bar_steps_reach_the_reporter(host, node):
    recorder = Recorder()
    prompt = {
        "1": node("IntConst", value=1),
        "2": node("Steps", value=["1", 0], steps=3, delay=0.0, interrupt_at=-1),
        "3": node("Show", value=["2", 0]),
    }
    assert host.run(prompt, progress=recorder).ok
    steps = [e for e in recorder.events if e[0] == "progress"]
    assert steps == [("progress", "2", 1, 3), ("progress", "2", 2, 3), ("progress", "2", 3, 3)]
    assert ("end", "3", "ran") in recorder.events


def test_an_interrupt_stops_at_the_next_progress_step(host, node):
    recorder = Recorder()
    prompt = {
        "1": node("IntConst", value=1),
        "2": node("Steps", value=["1", 0], steps=5, delay=0.0, interrupt_at=2),
        "3": node("Show", value=["2", 0]),
    }
    result = host.run(prompt, prompt_id="p", progress=recorder)
    assert result.status == "interrupted"
    assert result.error == {"prompt_id": "p", "node_id": "2", "node_type": "Steps", "executed": ["1"]}
    assert [e for e in recorder.events if e[0] == "progress"] == [
        ("progress", "2", 1, 5),
        ("progress", "2", 2, 5),
    ]
    assert result.history["status"]["status_str"] == "error"
    assert result.history["status"]["messages"][-1][0] == "execution_interrupted"
    # The next run starts with the flag cleared.
    prompt["2"]["inputs"]["interrupt_at"] = -1
    assert host.run(prompt).ok


def test_interrupt_from_another_thread(host, node):
    prompt = {
        "1": node("IntConst", value=1),
        "2": node("Steps", value=["1", 0], steps=200, delay=0.01, interrupt_at=-1),
        "3": node("Show", value=["2", 0]),
    }
    started = threading.Event()

    class Trigger(Recorder):
        def node_progress(self, node_id, value, total):
            started.set()

    timer = threading.Thread(target=lambda: started.wait(5) and host.interrupt())
    timer.start()
    result = host.run(prompt, progress=Trigger())
    timer.join()
    assert result.status == "interrupted" and result.error["node_id"] == "2"
    steps = {r.node_id: r for r in result.nodes}["2"]
    assert steps.status == "interrupted" and steps.seconds < 1.5


def test_a_node_that_returns_no_tuple_fails_clearly(host, node, monkeypatch):
    monkeypatch.setattr(host.registry.classes["IntConst"], "make", lambda self, value: value)
    result = host.run({"1": node("IntConst", value=1), "2": node("Show", value=["1", 0])})
    assert result.status == "error" and result.error["exception_type"] == "TypeError"
    assert "must return a tuple" in result.error["exception_message"]


def test_an_invalid_prompt_is_not_run(host, node):
    result = host.run({"1": node("IntConst", value=1000), "2": node("Show", value=["1", 0])})
    assert result.status == "invalid" and not result.ok and result.history is None
    assert result.validation.node_errors["1"]["errors"][0]["type"] == "value_bigger_than_max"


@pytest.mark.parametrize("class_name", ["Hidden"])
def test_node_instances_are_kept_per_node_id_across_runs(host, node, class_name):
    prompt = {"4": node(class_name, text="a")}
    host.run(prompt)
    first = host.cache.objects[("4", class_name)]
    prompt["4"]["inputs"]["text"] = "b"
    host.run(prompt)
    assert host.cache.objects[("4", class_name)] is first


def test_out_of_memory_adds_comfyuis_tip_and_unloads_models(host, node, monkeypatch):
    import torch

    from host_stub.shim import model_management

    def out_of_memory(self, value):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(host.registry.classes["IntConst"], "make", out_of_memory)
    unloads = model_management.calls["unload_all_models"]
    result = host.run({"1": node("IntConst", value=1), "2": node("Show", value=["1", 0])})
    assert result.error["exception_type"] == "torch.OutOfMemoryError"
    assert result.error["exception_message"].startswith("CUDA out of memory. Tried to allocate 2.00 GiB\n")
    assert "TIPS: If the workflow worked before" in result.error["exception_message"]
    assert model_management.calls["unload_all_models"] == unloads + 1
