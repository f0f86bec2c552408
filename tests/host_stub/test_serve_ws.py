"""`serve`'s websocket: ComfyUI's message sequence (checked against ComfyUI 0.3.64 itself), who gets
which message, cached nodes, errors, interrupts, and clients that leave or come back mid-prompt."""

from __future__ import annotations

import itertools
import time

import pytest

from host_stub import Host
from host_stub.server.reporter import PromptReporter
from tests.host_stub.serve_support import PACKS, Client, InProcess, Listener, chain, node

values = itertools.count(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_ws")
    host = Host(packs=[PACKS / "arith", PACKS / "features", PACKS / "flow"], input_dir=root / "input",
                output_dir=root / "output", models_dir=root / "models")
    server = InProcess(host, root / "queue.sqlite3")
    yield server
    server.stop()


@pytest.fixture
def api(served):
    client = Client(served.base)
    client.wait_idle()
    return client


@pytest.fixture
def listen(served):
    opened: list[Listener] = []

    def make(client_id: str | None = None) -> Listener:
        opened.append(Listener(served.base, client_id))
        return opened[-1]

    yield make
    for listener in opened:
        listener.close()


def summary(messages: list[dict]) -> list[tuple]:
    """(type, node) pairs; progress_state as (type, node, state) of the node that changed."""
    out, states = [], {}
    for m in messages:
        kind, data = m["type"], m["data"]
        if kind == "progress_state":
            nodes = data["nodes"].items()
            changed = [(n, e["state"]) for n, e in nodes if states.get(n) != (e["state"], e["value"])]
            states = {n: (e["state"], e["value"]) for n, e in data["nodes"].items()}
            out.append((kind, *changed[0]))
        elif kind in ("executing", "executed", "progress"):
            out.append((kind, data["node"]))
        else:
            out.append((kind,))
    return out


def test_the_message_sequence_is_comfyuis(api, listen):
    """The order ComfyUI 0.3.64 sends for IntConst -> Steps(2) -> Show (seen against the real one)."""
    ws = listen("seq")
    value = next(values)
    prompt_id = api.queue(chain(value=value, steps=2), client_id="seq")["prompt_id"]
    ws.done(prompt_id)
    start = next(i for i, m in enumerate(ws.messages) if m["type"] == "execution_start")
    assert [m["type"] for m in ws.messages[1:start]] == ["status", "status"]  # queued, then taken
    assert summary(ws.messages[start:]) == [
        ("execution_start",), ("execution_cached",),
        ("progress_state", "1", "running"), ("executing", "1"), ("progress_state", "1", "finished"),
        ("progress_state", "2", "running"), ("executing", "2"),
        ("progress_state", "2", "running"), ("progress", "2"),
        ("progress_state", "2", "running"), ("progress", "2"),
        ("progress_state", "2", "finished"),
        ("progress_state", "3", "running"), ("executing", "3"), ("executed", "3"),
        ("progress_state", "3", "finished"),
        ("execution_success",), ("status",), ("executing", None),
    ]
    by_type = {m["type"]: m["data"] for m in ws.of(prompt_id)}
    assert by_type["executed"] == {"node": "3", "display_node": "3", "output": {"values": [value + 2]},
                                   "prompt_id": prompt_id}
    assert by_type["progress"] == {"value": 2, "max": 2, "prompt_id": prompt_id, "node": "2"}
    assert by_type["execution_cached"]["nodes"] == [] and "timestamp" in by_type["execution_cached"]
    state = by_type["progress_state"]["nodes"]["3"]
    assert state == {"value": 1.0, "max": 1.0, "state": "finished", "node_id": "3", "prompt_id": prompt_id,
                     "display_node_id": "3", "parent_node_id": None, "real_node_id": "3"}
    assert ws.messages[-1]["data"] == {"node": None, "prompt_id": prompt_id}


def test_cached_nodes_get_executed_but_never_executing(api, listen):
    ws = listen("cached")
    prompt = chain(value=next(values))
    api.history(api.queue(prompt)["prompt_id"])
    prompt_id = api.queue(prompt, client_id="cached")["prompt_id"]
    messages = ws.done(prompt_id)
    assert summary(messages) == [("execution_start",), ("execution_cached",), ("executed", "3"),
                                 ("progress_state", "3", "finished"), ("execution_success",),
                                 ("executing", None)]
    assert messages[1]["data"]["nodes"] == ["1", "2", "3"]


def test_the_history_entry_is_written_before_executing_null(api, listen):
    ws = listen("order")
    prompt_id = api.queue(chain(value=next(values)), client_id="order")["prompt_id"]
    ws.done(prompt_id)
    assert prompt_id in api.get(f"/history/{prompt_id}")[1]  # at once, without waiting


def test_progress_and_errors_reach_only_the_client_that_queued(api, listen):
    mine, other = listen("mine"), listen("other")
    prompt = {"1": node("IntConst", value=next(values)), "2": node("Boom", value=["1", 0]),
              "3": node("Show", value=["2", 0])}
    prompt_id = api.queue(prompt, client_id="mine")["prompt_id"]
    messages = mine.done(prompt_id)
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error["node_id"] == "2" and error["exception_type"] == "ValueError"
    assert set(error) >= {"prompt_id", "node_type", "executed", "exception_message", "traceback",
                          "current_inputs", "current_outputs", "timestamp"}
    assert "execution_success" not in [m["type"] for m in messages]
    steps = api.queue(chain(value=next(values), steps=3), client_id="mine")["prompt_id"]
    mine.done(steps)
    time.sleep(0.1)
    assert {m["type"] for m in other.messages} == {"status"}  # queue counts only


def test_without_a_client_id_only_progress_is_broadcast(api, listen):
    """As ComfyUI: progress and progress_state go to everyone; the rest is sent to nobody."""
    ws = listen("watcher")
    prompt_id = api.queue(chain(value=next(values), steps=2))["prompt_id"]
    api.history(prompt_id)
    time.sleep(0.1)
    assert {m["type"] for m in ws.of(prompt_id)} == {"progress", "progress_state"}


def test_a_blocker_with_a_message_sends_comfyuis_execution_error_and_the_prompt_succeeds(api, listen):
    ws = listen("blocked")
    prompt = {"1": node("IntConst", value=next(values)),
              "2": node("Gate", value=["1", 0], block=True, message="no entry"),
              "3": node("Show", value=["2", 0])}
    prompt_id = api.queue(prompt, client_id="blocked")["prompt_id"]
    messages = ws.done(prompt_id)
    kinds = [m["type"] for m in messages]
    assert kinds.index("execution_error") < kinds.index("execution_success")
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    assert error == {"prompt_id": prompt_id, "node_id": "3", "node_type": "Show", "executed": ["1", "2"],
                     "exception_message": "Execution Blocked: no entry", "exception_type": "ExecutionBlocked",
                     "traceback": [], "current_inputs": [], "current_outputs": []}
    entry = api.history(prompt_id)
    assert entry["status"]["status_str"] == "success" and entry["outputs"] == {}
    assert "execution_error" not in [event for event, _ in entry["status"]["messages"]]


def test_a_blockers_error_without_a_client_id_goes_to_everyone():
    sent = []
    reporter = PromptReporter(lambda event, data, sid: sent.append((event, sid)), "p1", None, ["3"],
                              lambda node_id: None)
    reporter.node_blocked("3", {"prompt_id": "p1", "node_id": "3"})
    reporter.message("execution_success", {"prompt_id": "p1"})
    assert sent == [("execution_error", None)]  # ComfyUI's send_sync to client id None: a broadcast


def test_an_interrupted_prompt_says_so_then_executing_null(api, listen):
    ws = listen("stop")
    prompt_id = api.queue(chain(value=next(values), steps=200, delay=0.05), client_id="stop")["prompt_id"]
    ws.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == prompt_id)
    api.post("/interrupt", {"prompt_id": prompt_id})
    kinds = [m["type"] for m in ws.done(prompt_id, timeout=10)]
    assert kinds[-2:] == ["execution_interrupted", "executing"]
    assert "execution_success" not in kinds and "execution_error" not in kinds


def test_a_client_that_leaves_mid_prompt_does_not_stop_it_and_can_come_back(api, listen, served):
    ws = listen("leaver")
    prompt_id = api.queue(chain(value=next(values), steps=40, delay=0.02), client_id="leaver")["prompt_id"]
    ws.wait_for(lambda m: m["type"] == "progress")
    ws.close()
    back = listen("leaver")  # ComfyUI tells a returning client which node is running
    assert back.messages[0]["data"]["sid"] == "leaver"
    assert back.wait_for(lambda m: m["type"] == "executing")["data"]["node"] == "2"
    assert api.history(prompt_id)["status"]["status_str"] == "success"
    back.done(prompt_id)


def test_a_client_without_an_id_gets_one(listen):
    ws = listen()
    sid = ws.messages[0]["data"]["sid"]
    assert len(sid) == 32 and ws.messages[0]["data"]["status"] == {"exec_info": {"queue_remaining": 0}}


def test_nodes_added_by_expansion_are_shown_as_the_node_that_added_them():
    sent = []
    reporter = PromptReporter(lambda event, data, sid: sent.append((event, data, sid)), "p1", "c1", ["9"],
                              lambda node_id: {"output": {"values": [1]}})
    reporter.node_expanded("5.0.0.1", "Add", "5", "5")
    reporter.node_expanded("5.0.0.1.0.0.2", "Show", "5.0.0.1", "5")
    reporter.node_started("5.0.0.1.0.0.2", "Show", "Show")
    reporter.node_finished("5.0.0.1.0.0.2", "ran", 0.1)
    by_type = {event: data for event, data, _ in sent}
    assert by_type["executing"] == {"node": "5.0.0.1.0.0.2", "display_node": "5", "prompt_id": "p1"}
    assert by_type["executed"]["display_node"] == "5"
    state = by_type["progress_state"]["nodes"]["5.0.0.1.0.0.2"]
    assert (state["display_node_id"], state["parent_node_id"], state["real_node_id"]) == ("5", "5.0.0.1", "5")
    assert {sid for _, _, sid in sent} == {"c1"}


def test_without_the_editor_the_root_says_how_to_get_it(api):
    status, body = api.get("/")
    assert status == 200 and b"pip install i2v-nodes[ui]" in body
    assert api.get("/extensions") == (200, [])
