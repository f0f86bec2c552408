"""Async nodes: they run as tasks on the run's event loop, so independent ones overlap."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time

import pytest


@pytest.fixture
def host(make_host):
    return make_host("arith", "flow")


@pytest.fixture
def spans():
    module = importlib.import_module(
        next(name for name in __import__("sys").modules if name.endswith("flow.async_nodes"))
    )
    module.SPANS.clear()
    return module.SPANS


class Recorder:
    def __init__(self):
        self.progress = []
        self.finished = []

    def node_started(self, node_id, class_type, title):
        pass

    def node_progress(self, node_id, value, total):
        self.progress.append((node_id, value, total))

    def node_finished(self, node_id, status, seconds):
        self.finished.append((node_id, status, seconds))


def sleepers(node, count=3, seconds=0.3):
    prompt = {"1": node("IntConst", value=5)}
    for index in range(count):
        prompt[f"s{index}"] = node("Sleepy", value=["1", 0], seconds=seconds, label=f"s{index}")
        prompt[f"o{index}"] = node("Show", value=[f"s{index}", 0])
    return prompt


def overlapping(spans):
    """True when every span overlaps every other."""
    return all(a[1] < b[2] and b[1] < a[2] for a in spans for b in spans if a is not b)


def test_independent_async_nodes_overlap(host, node, spans):
    reporter = Recorder()
    started = time.perf_counter()
    result = host.run(sleepers(node), progress=reporter)
    elapsed = time.perf_counter() - started
    assert result.ok, result.error
    assert result.ui == {f"o{i}": {"values": [5]} for i in range(3)}
    assert len(spans) == 3 and overlapping(spans)
    assert elapsed < 0.8  # one sleep's time (0.3 s) plus overhead, not three
    # Progress without a node id lands on the right node: each task keeps its execution context.
    assert sorted({p[0] for p in reporter.progress}) == ["s0", "s1", "s2"]
    seconds = {node_id: s for node_id, status, s in reporter.finished if node_id.startswith("s")}
    assert all(0.25 < s < 0.8 for s in seconds.values())  # each counts its own task's time


def test_async_nodes_inside_an_expansion_overlap(host, node, spans):
    started = time.perf_counter()
    result = host.run({"2": node("FanOut", count=4, seconds=0.3), "3": node("Show", value=["2", 0])})
    assert result.ok, result.error
    assert result.ui == {"3": {"values": [10]}}
    assert time.perf_counter() - started < 0.9 and overlapping(spans)


def test_an_async_failure_is_the_failing_nodes_error(host, node):
    prompt = {
        "1": node("IntConst", value=5),
        "2": node("AsyncBoom", value=["1", 0], after=0.05),
        "3": node("Show", value=["2", 0]),
    }
    result = host.run(prompt)
    assert result.status == "error" and result.error["node_id"] == "2"
    assert result.error["exception_type"] == "RuntimeError"
    assert result.error["exception_message"].startswith("async boom")


def test_a_failure_while_async_work_runs_stops_and_cancels_it(host, node, spans):
    prompt = sleepers(node, count=2, seconds=0.5)
    prompt["b"] = node("Boom", value=["1", 0])
    prompt["ob"] = node("Show", value=["b", 0])
    started = time.perf_counter()
    result = host.run(prompt)
    assert result.status == "error" and result.error["node_id"] == "b"
    assert time.perf_counter() - started < 0.45  # did not wait for the sleepers
    assert spans == []  # they were cancelled, not left running


def test_an_async_lazy_check_asks_for_one_branch(host, node, spans):
    prompt = {
        "1": node("IntConst", value=5),
        "a": node("Sleepy", value=["1", 0], seconds=0.05, label="a"),
        "b": node("Sleepy", value=["1", 0], seconds=0.05, label="b"),
        "p": node("AsyncPick", use_a=False, a=["a", 0], b=["b", 0]),
        "3": node("Show", value=["p", 0]),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    assert [label for label, _s, _e in spans] == ["b"] and "a" not in result.executed


def test_async_results_are_cached(host, node, spans):
    host.run(sleepers(node, count=1))
    started = time.perf_counter()
    result = host.run(sleepers(node, count=1))
    assert result.executed == [] and time.perf_counter() - started < 0.2
    assert len(spans) == 1


def test_an_interrupt_stops_running_async_nodes(host, node, spans):
    prompt = sleepers(node, count=2, seconds=2.0)
    timer = threading.Timer(0.3, host.interrupt)
    timer.start()
    started = time.perf_counter()
    result = host.run(prompt)
    timer.join()
    assert result.status == "interrupted"
    assert result.error["node_id"] in ("s0", "s1")
    assert time.perf_counter() - started < 1.5 and spans == []


def test_a_run_started_from_inside_an_event_loop_still_works(host, node):
    async def main():
        return host.run(sleepers(node, count=2, seconds=0.05))

    result = asyncio.run(main())
    assert result.ok, result.error
