"""The queue and history survive restarts: the SQLite store itself, then real `serve` processes
stopped with SIGKILL and SIGTERM and started again on the same database."""

from __future__ import annotations

import signal

import pytest

from host_stub.server.store import QueueInUse, QueueStore
from tests.host_stub.serve_support import PACKS, Client, Subprocess, chain


def comfyui_history(entries: dict, max_items: int | None, offset: int) -> list:
    """ComfyUI's PromptQueue.get_history listing, restated: the reference for the store's answer."""
    if offset < 0 and max_items is not None:
        offset = len(entries) - max_items
    out = []
    for i, key in enumerate(entries):
        if i >= offset:
            out.append(key)
            if max_items is not None and len(out) >= max_items:
                break
    return out


def test_the_store_orders_like_comfyuis_heap_and_keeps_everything_on_reopen(tmp_path):
    store = QueueStore(tmp_path / "q.sqlite3")
    a = store.add("a", {}, {"client_id": "x"}, ["1"])
    b = store.add("b", {}, {}, ["1"])
    c = store.add("c", {}, {}, ["1"], front=True)
    store.add("d", {}, {}, ["1"], number=-0.5)
    e = store.add("0", {}, {}, ["1"], number=1.0)  # ties on number: the prompt id decides, as in a heap
    assert (a.number, b.number, c.number) == (0, 1, -2)
    assert [i.prompt_id for i in store.pending()] == ["c", "d", "a", "0", "b"]
    assert e.as_list() == [1.0, "0", {}, {}, ["1"]]
    with pytest.raises(ValueError):
        store.add("a", {}, {}, [])
    assert store.claim().prompt_id == "c"
    assert store.delete_pending("c") == "running" and store.delete_pending("d") == "pending"
    assert store.delete_pending("zz") is None
    store.finish("c", {"status": {"status_str": "success"}})
    store.close()

    store = QueueStore(tmp_path / "q.sqlite3")
    assert [i.prompt_id for i in store.pending()] == ["a", "0", "b"] and store.running() == []
    assert store.history() == {"c": {"status": {"status_str": "success"}}}
    assert store.add("f", {}, {}, []).number == 3  # the counter carries on
    assert store.remaining() == 4


@pytest.mark.parametrize("rerun", [True, False])
def test_a_prompt_left_running_reruns_or_is_marked_failed(tmp_path, rerun):
    store = QueueStore(tmp_path / "q.sqlite3")
    store.add("p", {"1": {"class_type": "X", "inputs": {}}}, {}, ["1"])
    store.claim()
    store.close()  # as if the process died here

    store = QueueStore(tmp_path / "q.sqlite3")
    assert store.recover(rerun, lambda item: {"failed": item.prompt_id}) == ["p"]
    if rerun:
        assert [i.prompt_id for i in store.pending()] == ["p"] and store.history() == {}
    else:
        assert store.remaining() == 0 and store.history() == {"p": {"failed": "p"}}


def test_history_listing_and_trimming_follow_comfyui(tmp_path):
    store = QueueStore(tmp_path / "q.sqlite3", max_history=5)
    for i in range(7):
        store.add(f"p{i}", {}, {}, [])
        store.claim()
        store.finish(f"p{i}", {"n": i})
    entries = store.history()
    assert list(entries) == [f"p{i}" for i in range(2, 7)]  # the oldest two dropped
    for max_items in (None, 0, 1, 2, 5, 9):
        for offset in (-1, 0, 1, 3, 7):
            assert list(store.history(max_items, offset)) == comfyui_history(entries, max_items, offset)
    store.delete_history(["p3", "nope"])
    assert "p3" not in store.history() and store.history_item("p4") == {"p4": {"n": 4}}
    assert store.history_item("p3") == {}
    store.clear_history()
    assert store.history() == {}


def serve(tmp_path, *extra: str) -> Subprocess:
    return Subprocess("--packs", str(PACKS / "arith"), "--output-dir", str(tmp_path / "out"), "--input-dir",
                      str(tmp_path / "in"), "--queue-db", str(tmp_path / "queue.sqlite3"), *extra)


def test_kill_9_loses_nothing_and_the_running_prompt_runs_again(tmp_path):
    first = serve(tmp_path)
    api = Client(first.base)
    done = api.queue(chain(value=1))["prompt_id"]
    api.history(done)
    running = api.queue(chain(value=2, steps=100, delay=0.1))["prompt_id"]
    api.wait_running(running)
    waiting = [api.queue(chain(value=v), front=(v == 4))["prompt_id"] for v in (3, 4)]
    before = api.get("/queue")[1]
    first.kill()

    second = serve(tmp_path)
    try:
        api = Client(second.base)
        assert any("queued again: " + running in line for line in second.log)
        assert list(api.get(f"/history/{done}")[1]) == [done]  # the history survived
        queue = api.get("/queue")[1]
        queued = queue["queue_running"] + queue["queue_pending"]
        previously = before["queue_running"] + before["queue_pending"]
        assert sorted(i[:2] for i in queued) == sorted(i[:2] for i in previously)
        api.wait_running(running)  # after the front item: it runs again in its place in the queue
        api.post("/interrupt", {"prompt_id": running})  # no need to wait ten seconds for it
        entries = {pid: api.history(pid) for pid in [running, *waiting]}
        assert entries[waiting[0]]["outputs"] == {"3": {"values": [5]}}
        assert entries[waiting[1]]["prompt"][0] < 0  # the front item kept its number
        assert entries[running]["prompt"][1] == running
    finally:
        assert second.stop() == 0


def test_on_restart_fail_marks_the_interrupted_prompt_failed(tmp_path):
    first = serve(tmp_path)
    api = Client(first.base)
    running = api.queue(chain(value=7, steps=100, delay=0.1))["prompt_id"]
    api.wait_running(running)
    first.kill()
    second = serve(tmp_path, "--on-restart", "fail")
    try:
        entry = Client(second.base).history(running)
        assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
        assert entry["status"]["messages"][-1][1]["exception_type"] == "ServerRestart"
        assert Client(second.base).get("/queue")[1] == {"queue_running": [], "queue_pending": []}
    finally:
        second.stop()


def test_sigterm_interrupts_the_running_prompt_which_stays_queued(tmp_path):
    first = serve(tmp_path)
    api = Client(first.base)
    running = api.queue(chain(value=9, steps=100, delay=0.1))["prompt_id"]
    api.wait_running(running)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(20) == 0
    second = serve(tmp_path)
    try:
        api = Client(second.base)
        api.wait_running(running)
        assert api.get(f"/history/{running}")[1] == {}
        api.post("/interrupt", {"prompt_id": running})
        assert api.history(running)["status"]["messages"][-1][0] == "execution_interrupted"
    finally:
        second.stop()


def test_one_process_at_a_time_serves_from_a_database(tmp_path):
    store = QueueStore(tmp_path / "q.sqlite3")
    with pytest.raises(QueueInUse, match="another process"):
        QueueStore(tmp_path / "q.sqlite3")
    store.close()
    QueueStore(tmp_path / "q.sqlite3").close()
