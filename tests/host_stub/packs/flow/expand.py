"""Nodes that expand into graphs, and a gate that blocks with an ExecutionBlocker."""

from comfy_execution.graph import ExecutionBlocker
from comfy_execution.graph_utils import GraphBuilder, is_link

INT = ("INT", {"forceInput": True})


class RepeatAdd:
    """value + step, `times` times, as a chain of Add nodes; its output is the chain's end."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT, "step": ("INT", {"default": 1}), "times": ("INT", {"default": 2})}}

    def expand(self, value, step, times):
        graph = GraphBuilder()
        node = graph.node("IntConst", value=value)
        for _ in range(times):
            node = graph.node("Add", a=node.out(0), b=step)
        return {"result": (node.out(0),), "expand": graph.finalize()}


class ShowInside:
    """Expands into an output node (Show) fed by a constant: its UI belongs to the expansion."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT}}

    def expand(self, value):
        graph = GraphBuilder()
        shown = graph.node("Show", value=graph.node("IntConst", value=value * 10).out(0))
        return {"result": (shown.out(0),), "expand": graph.finalize()}


class Countdown:
    """Counts `n` down by expanding into another Countdown: nested expansions."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "step"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 3}), "total": ("INT", {"default": 0})}}

    def step(self, n, total):
        if n <= 0:
            return (total,)
        graph = GraphBuilder()
        inner = graph.node("Countdown", n=n - 1, total=total + n)
        return {"result": (inner.out(0),), "expand": graph.finalize()}


class ExpandBoom:
    """Expands into a Boom node: the failure happens inside the expansion."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT}}

    def expand(self, value):
        graph = GraphBuilder()
        boom = graph.node("Boom", value=graph.node("IntConst", value=value).out(0))
        return {"result": (boom.out(0),), "expand": graph.finalize()}


class CycleExpand:
    """Expands into two Adds that wait on each other."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT}}

    def expand(self, value):
        graph = GraphBuilder()
        first = graph.node("Add", b=value)
        second = graph.node("Add", a=first.out(0), b=1)
        first.set_input("a", second.out(0))
        return {"result": (second.out(0),), "expand": graph.finalize()}


class ReuseId:
    """Expands into a node whose id is already in the prompt."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "expand"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT, "taken": ("STRING", {"default": "1"})}}

    def expand(self, value, taken):
        return {
            "result": ([taken, 0],),
            "expand": {taken: {"class_type": "IntConst", "inputs": {"value": 1}}},
        }


class MaybeExpand:
    """Per item of a list: small values return directly, others expand (mixed returns)."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT", "INT")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT}}

    def run(self, value):
        if value < 2:
            return (value, -1)
        graph = GraphBuilder()
        doubled = graph.node("Add", a=graph.node("IntConst", value=value).out(0), b=value)
        return {"result": (doubled.out(0), -1), "expand": graph.finalize()}


class Gate:
    """Passes `value` on, or blocks it (silently, or with `message`)."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("INT",)
    FUNCTION = "gate"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "value": INT,
                "block": ("BOOLEAN", {"default": False}),
                "message": ("STRING", {"default": ""}),
            }
        }

    def gate(self, value, block, message):
        if block:
            return (ExecutionBlocker(message or None),)
        return (value,)


class IsEven:
    CATEGORY = "test/flow"
    RETURN_TYPES = ("BOOLEAN",)
    FUNCTION = "check"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": INT}}

    def check(self, value):
        return (value % 2 == 0,)


class LinkEcho:
    """Gets its input as a raw link (rawLink) and reports whether it is one."""

    CATEGORY = "test/flow"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "echo"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"rawLink": True})}}

    def echo(self, value):
        return (f"link to {value[0]}" if is_link(value) else "constant",)


NODES = {
    "RepeatAdd": RepeatAdd,
    "ShowInside": ShowInside,
    "Countdown": Countdown,
    "CycleExpand": CycleExpand,
    "ExpandBoom": ExpandBoom,
    "ReuseId": ReuseId,
    "MaybeExpand": MaybeExpand,
    "Gate": Gate,
    "IsEven": IsEven,
    "LinkEcho": LinkEcho,
}
