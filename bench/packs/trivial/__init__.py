"""Trivial nodes for the host_stub benchmark: the time measured is the host's, not the nodes'."""


class BenchConst:
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**31), "max": 2**31})}}

    def make(self, value):
        return (value,)


class BenchInc:
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "inc"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "x": ("INT", {"forceInput": True}),
                "step": ("INT", {"default": 1, "min": 0, "max": 10}),
            }
        }

    def inc(self, x, step):
        return (x + step,)


class BenchSink:
    CATEGORY = "bench"
    RETURN_TYPES = ()
    FUNCTION = "sink"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT", {"forceInput": True})}}

    def sink(self, x):
        return {"ui": {"value": [x]}}


NODE_CLASS_MAPPINGS = {"BenchConst": BenchConst, "BenchInc": BenchInc, "BenchSink": BenchSink}
