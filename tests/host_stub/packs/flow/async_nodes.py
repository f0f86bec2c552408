"""Async nodes: they log when they start and end, so tests can see them overlap."""

import asyncio
import time

import comfy.utils
from comfy.comfy_types import IO, ComfyNodeABC
from comfy_execution.graph_utils import GraphBuilder

SPANS = []  # (label, start, end) of every Sleepy call


class Sleepy(ComfyNodeABC):
    CATEGORY = "test/async"
    RETURN_TYPES = (IO.ANY,)
    FUNCTION = "sleep"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "value": (IO.ANY, {}),
                "seconds": ("FLOAT", {"default": 0.2}),
                "label": ("STRING", {"default": ""}),
            },
            "optional": {"steps": ("INT", {"default": 2})},
        }

    async def sleep(self, value, seconds, label, steps=2):
        start = time.perf_counter()
        bar = comfy.utils.ProgressBar(steps)  # no node id: the execution context names the node
        for _ in range(steps):
            await asyncio.sleep(seconds / steps)
            bar.update(1)
        SPANS.append((label, start, time.perf_counter()))
        return (value,)


class AsyncBoom(ComfyNodeABC):
    CATEGORY = "test/async"
    RETURN_TYPES = (IO.ANY,)
    FUNCTION = "boom"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (IO.ANY, {}), "after": ("FLOAT", {"default": 0.05})}}

    async def boom(self, value, after):
        await asyncio.sleep(after)
        raise RuntimeError("async boom")


class AsyncPick(ComfyNodeABC):
    """Async lazy check: asks only for the input it will use."""

    CATEGORY = "test/async"
    RETURN_TYPES = (IO.ANY,)
    FUNCTION = "pick"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "use_a": ("BOOLEAN", {"default": True}),
                "a": (IO.ANY, {"lazy": True}),
                "b": (IO.ANY, {"lazy": True}),
            }
        }

    async def check_lazy_status(self, use_a, a=None, b=None):
        await asyncio.sleep(0.01)
        return ["a"] if use_a and a is None else ["b"] if not use_a and b is None else []

    async def pick(self, use_a, a=None, b=None):
        return (a if use_a else b,)


class FanOut:
    """Expands into `count` Sleepy nodes summed by an IntSum: async nodes inside an expansion."""

    CATEGORY = "test/async"
    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3}), "seconds": ("FLOAT", {"default": 0.2})}}

    def expand(self, count, seconds):
        graph = GraphBuilder()
        total = graph.node("IntConst", value=0)
        for index in range(count):
            slept = graph.node("Sleepy", value=index + 1, seconds=seconds, label=f"fan{index}")
            total = graph.node("Add", a=total.out(0), b=slept.out(0))
        return {"result": (total.out(0),), "expand": graph.finalize()}


NODES = {"Sleepy": Sleepy, "AsyncBoom": AsyncBoom, "AsyncPick": AsyncPick, "FanOut": FanOut}
