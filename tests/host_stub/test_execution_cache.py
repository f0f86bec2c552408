"""ComfyUI's LRU cache mode (``--cache-lru N``) beside the classic cache."""

from __future__ import annotations


def chain(node, value):
    return {
        "1": node("IntConst", value=value),
        "2": node("Add", a=["1", 0], b=1),
        "3": node("Show", value=["2", 0]),
    }


def test_the_classic_cache_keeps_only_the_latest_prompt(make_host, node):
    host = make_host("arith")
    for cache_lru in (None, 0):  # --cache-lru 0 is ComfyUI's classic cache too
        host = make_host("arith", cache_lru=cache_lru)
        host.run(chain(node, 5))
        host.run(chain(node, 6))
        assert host.run(chain(node, 5)).executed == ["1", "2", "3"]


def test_lru_keeps_results_of_earlier_prompts(make_host, node):
    host = make_host("arith", cache_lru=100)
    assert host.run(chain(node, 5)).executed == ["1", "2", "3"]
    assert host.run(chain(node, 6)).executed == ["1", "2", "3"]
    result = host.run(chain(node, 5))
    assert result.executed == [] and result.cached == ["1", "2", "3"]
    assert result.ui == {"3": {"values": [6]}}  # the UI output comes back from the cache too


def test_lru_drops_the_prompts_used_longest_ago_first(make_host, node):
    host = make_host("arith", cache_lru=6)
    for value in (5, 6, 7):  # three prompts of three results each: only two fit
        host.run(chain(node, value))
    assert len(host.cache.outputs) == 9  # as in ComfyUI, entries are dropped when a prompt starts
    assert host.run(chain(node, 7)).executed == []
    assert len(host.cache.outputs) == 6  # the results of 5, used longest ago, are gone
    assert host.run(chain(node, 5)).executed == ["1", "2", "3"]
    assert host.run(chain(node, 6)).executed == []  # 7 made room this time


def test_lru_never_drops_what_the_running_prompt_uses(make_host, node):
    host = make_host("arith", cache_lru=1)
    assert host.run(chain(node, 5)).executed == ["1", "2", "3"]
    assert host.run(chain(node, 5)).executed == []  # three entries, although only one "fits"
    host.run(chain(node, 6))
    assert len(host.cache.outputs) == 3


def test_lru_caches_the_nodes_of_expansions(make_host, node):
    host = make_host("arith", "flow", cache_lru=50)
    prompt = {
        "1": node("IntConst", value=5),
        "2": node("RepeatAdd", value=["1", 0], step=2, times=3),
        "3": node("Show", value=["2", 0]),
    }
    assert host.run(prompt).ui == {"3": {"values": [11]}}
    host.run(chain(node, 9))
    assert host.run(prompt).executed == []
    prompt["2"]["inputs"]["times"] = 4
    result = host.run(prompt)
    assert result.executed == ["2.0.0.5", "2", "3"] and result.ui == {"3": {"values": [13]}}


def test_free_memory_empties_the_lru_cache(make_host, node):
    host = make_host("arith", cache_lru=10)
    host.run(chain(node, 5))
    host.free(free_memory=True)
    assert host.run(chain(node, 5)).executed == ["1", "2", "3"]
