"""The process-wide model cache: load once, share across threads, evict, unload."""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
import weakref

from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.loading.handle import CacheKey


def test_second_run_loads_nothing(tiny_handle, still_image, small_settings, fresh_cache):
    for seed in range(3):
        sampling.sample(tiny_handle, still_image, dataclasses.replace(small_settings, seed=seed),
                        services.standalone(), cache=fresh_cache)
    assert fresh_cache.loads == 1 and fresh_cache.stats().hits == 2


def test_two_threads_cause_one_load(tiny_handle, still_image, small_settings, fresh_cache):
    start = threading.Barrier(2)
    results, errors = [], []

    def worker(seed):
        try:
            start.wait()
            settings = dataclasses.replace(small_settings, seed=seed)
            results.append(sampling.sample(tiny_handle, still_image, settings, services.standalone(),
                                           cache=fresh_cache))
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2
    assert fresh_cache.loads == 1


def test_concurrent_requests_wait_for_one_slow_load():
    cache = ModelCache(lambda device: 2**40)
    key = CacheKey("slow", "fp32", "fp32", "cpu", "none")
    calls = []

    def loader():
        calls.append(1)
        time.sleep(0.2)
        return object(), None

    def use():
        with cache.use(key, 1, loader):
            pass

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and cache.loads == 1 and cache.hits == 3


def test_unload_frees_the_pipeline(tiny_handle, still_image, small_settings, fresh_cache):
    sampling.sample(tiny_handle, still_image, small_settings, services.standalone(), cache=fresh_cache)
    key = dataclasses.replace(tiny_handle.cache_key, offload="none")
    pipeline = weakref.ref(fresh_cache.peek(key).pipeline)
    assert fresh_cache.unload() == 1
    gc.collect()
    assert pipeline() is None
    assert fresh_cache.stats().entries == 0 and not fresh_cache.is_loaded(key)
    sampling.sample(tiny_handle, still_image, small_settings, services.standalone(), cache=fresh_cache)
    assert fresh_cache.loads == 2


def test_unload_while_in_use_drops_after_the_run():
    cache = ModelCache(lambda device: 2**40)
    key = CacheKey("m", "fp32", "fp32", "cpu", "none")
    dropped = []
    with cache.use(key, 1, lambda: ("model", lambda: dropped.append(1))) as value:
        assert value == "model"
        cache.unload(key)
        assert not dropped  # still running
    assert dropped == [1] and not cache.is_loaded(key)


def test_lru_eviction_under_budget():
    cache = ModelCache(lambda device: 100)
    dropped = []

    def loader(name):
        return lambda: (name, lambda: dropped.append(name))

    keys = {name: CacheKey(name, "fp32", "fp32", "cpu", "none") for name in "abc"}
    for name in "ab":
        with cache.use(keys[name], 40, loader(name)):
            pass
    with cache.use(keys["a"], 40, loader("a")):  # a is now the most recently used
        pass
    with cache.use(keys["c"], 40, loader("c")):
        pass
    assert dropped == ["b"]
    assert cache.is_loaded(keys["a"]) and cache.is_loaded(keys["c"])


def test_failed_load_does_not_poison_the_key():
    cache = ModelCache(lambda device: 2**40)
    key = CacheKey("flaky", "fp32", "fp32", "cpu", "none")
    attempts = []

    def loader():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return "ok", None

    try:
        with cache.use(key, 1, loader):
            pass
    except OSError:
        pass
    with cache.use(key, 1, loader) as value:
        assert value == "ok"
    assert cache.loads == 1
