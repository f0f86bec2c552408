"""ComfyUI V1 node classes, one file per node."""

from .encode_video import EncodeVideo
from .family_options import option_nodes
from .load_model import LoadI2VModel
from .load_model_files import LoadI2VModelFiles
from .lora import I2VLoRA
from .sample import I2VSample
from .speed_options import I2VSpeedOptions
from .vram_guard import VRAMGuard

NODE_CLASS_MAPPINGS: dict[str, type] = {
    "LoadI2VModel": LoadI2VModel,
    "VRAMGuard": VRAMGuard,
    "I2VSample": I2VSample,
    "EncodeVideo": EncodeVideo,
    "LoadI2VModelFiles": LoadI2VModelFiles,
    "I2VLoRA": I2VLoRA,
    "I2VSpeedOptions": I2VSpeedOptions,
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
    **{name: f"{cls.family.title or cls.family.name} Options (I2V)" for name, cls in option_nodes().items()},
}
