"""Nodes with the widget kinds the UI format cares about."""


class Sampler:
    """seed (control by name), a combo with control_after_generate, an INT with explicit control,
    a forceInput INT, an optional widget and a socket."""

    CATEGORY = "test"
    RETURN_TYPES = ("INT", "STRING")
    FUNCTION = "sample"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL_ISH",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 100}),
                "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 30.0}),
                "sampler": (["euler", "ddim", "dpm"], {"control_after_generate": True}),
                "variation": ("INT", {"default": 5, "control_after_generate": True}),
                "frames": ("INT", {"default": 16, "forceInput": True}),
                "prompt": ("STRING", {"default": "a cat", "multiline": True}),
            },
            "optional": {
                "denoise": ("BOOLEAN", {"default": True}),
                "tags": ("STRING", {"default": "none"}),
                "strength": ("FLOAT", {"default": 0.5, "control_after_generate": True}),
            },
        }

    def sample(
        self,
        model,
        seed,
        steps,
        cfg,
        sampler,
        variation,
        frames,
        prompt,
        denoise=True,
        tags="none",
        strength=0.5,
    ):
        values = (model, seed, steps, cfg, sampler, variation, frames, prompt, denoise, tags, strength)
        text = "|".join(str(v) for v in values)
        return {"ui": {"text": [text]}, "result": (seed, text)}


class ModelSource:
    CATEGORY = "test"
    RETURN_TYPES = ("MODEL_ISH", "INT")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "tiny"})}}

    def load(self, name):
        return (f"model:{name}", 16)


class Passthrough:
    """Two sockets and an INT widget: used to test what a bypassed node hands on."""

    CATEGORY = "test"
    RETURN_TYPES = ("MODEL_ISH", "INT")
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL_ISH",),
                "frames": ("INT", {"forceInput": True}),
                "scale": ("INT", {"default": 2}),
            }
        }

    def apply(self, model, frames, scale):
        return (f"{model}+patched", frames * scale)


NODES = {"Sampler": Sampler, "ModelSource": ModelSource, "Passthrough": Passthrough}
