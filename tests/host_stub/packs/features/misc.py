"""IS_CHANGED, VALIDATE_INPUTS, hidden inputs, images."""

import torch


class Seeded:
    """IS_CHANGED returns the seed: the cache key must follow it."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": (
                    "INT",
                    {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True},
                )
            }
        }

    @classmethod
    def IS_CHANGED(cls, seed):
        return seed

    def make(self, seed):
        return (seed % 1000,)


class AlwaysChanged:
    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1})}}

    @classmethod
    def IS_CHANGED(cls, value):
        return float("nan")

    def make(self, value):
        return (value,)


class Checked:
    """VALIDATE_INPUTS owns `value`: ComfyUI's own min/max check is skipped for it."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": 0, "max": 10})}}

    @classmethod
    def VALIDATE_INPUTS(cls, value):
        if value == 13:
            return "13 is unlucky"
        return True

    def make(self, value):
        return (value,)


class Hidden:
    CATEGORY = "test"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "echo"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"text": ("STRING", {"default": "hi"})},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def echo(self, text, prompt=None, extra_pnginfo=None, unique_id=None):
        ui = {
            "unique_id": [unique_id],
            "prompt_ids": [sorted(prompt)],
            "has_workflow": [bool(extra_pnginfo and "workflow" in extra_pnginfo)],
        }
        return {"ui": ui, "result": (text,)}


class Gradient:
    """An IMAGE [batch, height, width, 3] in 0..1."""

    CATEGORY = "test"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": ("INT", {"default": 8, "min": 1}),
                "height": ("INT", {"default": 4, "min": 1}),
                "batch": ("INT", {"default": 1, "min": 1}),
            }
        }

    def make(self, width, height, batch):
        ramp = torch.linspace(0, 1, width).view(1, 1, width, 1)
        return (ramp.expand(batch, height, width, 3).contiguous(),)


class ImageSize:
    CATEGORY = "test"
    RETURN_TYPES = ("INT", "INT", "INT")
    RETURN_NAMES = ("width", "height", "batch")
    FUNCTION = "size"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}, "optional": {"mask": ("MASK",)}}

    def size(self, image, mask=None):
        ui = {
            "shape": [list(image.shape)],
            "mask_shape": [list(mask.shape) if mask is not None else None],
            "inference_mode": [torch.is_inference_mode_enabled()],
        }
        return {"ui": ui, "result": (image.shape[2], image.shape[1], image.shape[0])}


NODES = {
    "Seeded": Seeded,
    "AlwaysChanged": AlwaysChanged,
    "Checked": Checked,
    "Hidden": Hidden,
    "Gradient": Gradient,
    "ImageSize": ImageSize,
}
