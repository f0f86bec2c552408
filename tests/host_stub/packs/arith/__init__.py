"""Test pack: integer nodes, an output node, a failing node and a progress-reporting node."""

import time

import comfy.model_management
import comfy.utils
import folder_paths  # imported at import time, as many real packs do

LOADED_WITH_FOLDER_PATHS = folder_paths


class IntConst:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": -100, "max": 100})}}

    def make(self, value):
        return (value,)


class Add:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("sum",)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {"default": 0})}}

    def add(self, a, b):
        return (a + b,)


class ToFloat:
    CATEGORY = "test"
    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    def convert(self, value):
        return (float(value),)


class Show:
    """Output node: reports the value it got in its UI output."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "show"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    def show(self, value):
        return {"ui": {"values": [value]}, "result": (value,)}


class Boom:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "boom"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    def boom(self, value):
        raise ValueError(f"boom at {value}")


class Steps:
    """Reports progress through comfy.utils.ProgressBar; sleeps between steps when asked."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "value": ("INT", {"forceInput": True}),
                "steps": ("INT", {"default": 3}),
                "delay": ("FLOAT", {"default": 0.0}),
                "interrupt_at": ("INT", {"default": -1}),
            }
        }

    def run(self, value, steps, delay, interrupt_at):
        bar = comfy.utils.ProgressBar(steps)
        for step in range(steps):
            if step == interrupt_at:
                comfy.model_management.interrupt_current_processing()
            time.sleep(delay)
            bar.update(1)
        return (value + steps,)


NODE_CLASS_MAPPINGS = {
    "IntConst": IntConst,
    "Add": Add,
    "ToFloat": ToFloat,
    "Show": Show,
    "Boom": Boom,
    "Steps": Steps,
}
NODE_DISPLAY_NAME_MAPPINGS = {"IntConst": "Integer", "Show": "Show Value"}
