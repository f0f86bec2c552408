"""INPUT_IS_LIST / OUTPUT_IS_LIST and lazy inputs."""


class MakeList:
    CATEGORY = "test"
    RETURN_TYPES = ("INT", "INT")
    OUTPUT_IS_LIST = (True, False)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3, "min": 0})}}

    def make(self, count):
        return (list(range(1, count + 1)), count)


class Double:
    """Plain node: called once per item of a list input."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "double"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    def double(self, value):
        return (value * 2,)


class SumList:
    """INPUT_IS_LIST: receives whole lists, called once; also an output node."""

    CATEGORY = "test"
    INPUT_IS_LIST = True
    RETURN_TYPES = ("INT",)
    FUNCTION = "total"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT", {"forceInput": True})}}

    def total(self, values):
        return {"ui": {"total": [sum(values)], "count": [len(values)]}, "result": (sum(values),)}


class Switch:
    """Lazy inputs: only the chosen branch is evaluated."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "pick"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "use_a": ("BOOLEAN", {"default": True}),
                "a": ("INT", {"forceInput": True, "lazy": True}),
                "b": ("INT", {"forceInput": True, "lazy": True}),
            }
        }

    def check_lazy_status(self, use_a, a=None, b=None):
        return ["a"] if use_a else ["b"]

    def pick(self, use_a, a=None, b=None):
        return (a if use_a else b,)


NODES = {"MakeList": MakeList, "Double": Double, "SumList": SumList, "Switch": Switch}
