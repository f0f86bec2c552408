"""ComfyUI V1 node classes, one file per node."""

from i2v_nodes.nodes.encode_video import EncodeVideo
from i2v_nodes.nodes.extend import I2VExtend
from i2v_nodes.nodes.family_options import option_nodes
from i2v_nodes.nodes.load_model import LoadI2VModel
from i2v_nodes.nodes.load_model_files import LoadI2VModelFiles
from i2v_nodes.nodes.lora import I2VLoRA
from i2v_nodes.nodes.sample import I2VSample
from i2v_nodes.nodes.sampler_options import I2VSamplerOptions
from i2v_nodes.nodes.speed_options import I2VSpeedOptions
from i2v_nodes.nodes.vram_guard import VRAMGuard

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "LoadI2VModel": LoadI2VModel,
    "VRAMGuard": VRAMGuard,
    "I2VSample": I2VSample,
    "EncodeVideo": EncodeVideo,
    "LoadI2VModelFiles": LoadI2VModelFiles,
    "I2VLoRA": I2VLoRA,
    "I2VSpeedOptions": I2VSpeedOptions,
    "I2VSamplerOptions": I2VSamplerOptions,
    "I2VExtend": I2VExtend,
    **option_nodes(),
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "LoadI2VModel": "Load Image-to-Video Model",
    "VRAMGuard": "VRAM Guard (I2V)",
    "I2VSample": "Image to Video Sample",
    "EncodeVideo": "Encode Video (mp4/webm/gif/webp)",
    "LoadI2VModelFiles": "Load Image-to-Video Model (ComfyUI files)",
    "I2VLoRA": "Image-to-Video LoRA",
    "I2VSpeedOptions": "Speed Options (I2V)",
    "I2VSamplerOptions": "Sampler Options (I2V)",
    "I2VExtend": "Image to Video Extend (longer videos)",
    **{name: f"{cls.family.title or cls.family.name} Options (I2V)" for name, cls in option_nodes().items()},
}
