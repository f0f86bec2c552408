"""ComfyUI's classic cache across runs of one host."""

from __future__ import annotations


def two_branches(node, seed=1, value=5):
    """Seeded -> Add -> Show, and IntConst -> Add -> Show."""
    return {
        "1": node("Seeded", seed=seed),
        "2": node("Add", a=["1", 0], b=1),
        "3": node("Show", value=["2", 0]),
        "4": node("IntConst", value=value),
        "5": node("Add", a=["4", 0], b=1),
        "6": node("Show", value=["5", 0]),
    }


def test_an_identical_rerun_runs_nothing(host, node):
    prompt = two_branches(node)
    first = host.run(prompt)
    assert sorted(first.executed) == ["1", "2", "3", "4", "5", "6"] and first.cached == []
    second = host.run(prompt)
    assert second.ok and second.executed == [] and sorted(second.cached) == ["1", "2", "3", "4", "5", "6"]
    assert second.ui == first.ui  # UI outputs of cached output nodes are still reported
    assert {r.status for r in second.nodes} == {"cached"}
    assert second.history["status"]["messages"][1][1]["nodes"] == second.cached


def test_a_changed_seed_reruns_only_that_node_and_its_dependents(host, node):
    host.run(two_branches(node, seed=1))
    result = host.run(two_branches(node, seed=2))
    assert result.executed == ["1", "2", "3"]
    assert result.ui["3"] == {"values": [3]} and result.ui["6"] == {"values": [6]}


def test_node_ids_are_not_part_of_the_key(host, node):
    host.run(two_branches(node))
    renumbered = {
        "10": node("Seeded", seed=1),
        "20": node("Add", a=["10", 0], b=1),
        "30": node("Show", value=["20", 0]),
    }
    assert host.run(renumbered).executed == []


def test_nan_from_is_changed_always_reruns(host, node):
    prompt = {
        "1": node("AlwaysChanged", value=2),
        "2": node("Show", value=["1", 0]),
        "3": node("IntConst", value=2),
        "4": node("Show", value=["3", 0]),
    }
    host.run(prompt)
    assert host.run(prompt).executed == ["1", "2"]


def test_entries_the_latest_run_does_not_use_are_dropped(host, node):
    a = two_branches(node, value=5)
    b = two_branches(node, value=6)
    host.run(a)
    assert host.run(b).executed == ["4", "5", "6"]
    assert len(host.cache.outputs) == 6  # the value=5 branch's entries are gone
    assert host.run(a).executed == ["4", "5", "6"]  # so going back runs that branch again


def test_a_node_with_unique_id_is_keyed_by_its_id(host, node):
    host.run({"1": node("Hidden", text="x")})
    assert host.run({"2": node("Hidden", text="x")}).executed == ["2"]


def test_free_memory_clears_the_cache(host, node):
    prompt = two_branches(node)
    host.run(prompt)
    host.free(free_memory=True)
    assert len(host.run(prompt).executed) == 6


def test_outputs_computed_before_a_failure_are_reused(host, node):
    prompt = {
        "1": node("Seeded", seed=3),
        "2": node("Boom", value=["1", 0]),
        "3": node("Show", value=["2", 0]),
    }
    assert host.run(prompt).status == "error"
    prompt["2"] = node("Add", a=["1", 0], b=1)
    result = host.run(prompt)
    assert result.ok and result.executed == ["2", "3"]


def test_unload_models_keeps_the_cache(host, node):
    from host_stub.shim import model_management

    prompt = two_branches(node)
    host.run(prompt)
    unloads = model_management.calls["unload_all_models"]
    host.free(unload_models=True)
    assert model_management.calls["unload_all_models"] == unloads + 1
    assert host.run(prompt).executed == []
