"""Stand-in for ``comfy_api.latest.ui``: UI outputs of V3 nodes (``io.NodeOutput(ui=...)``)."""

from __future__ import annotations

import os
import random
from typing import Any

from host_stub import safe_paths
from host_stub.shim import folder_paths
from host_stub.shim.v3_io import UIOutput
from host_stub.shim.v3_types import FolderType

_UIOutput = UIOutput  # kept: packs may reach the base as ui._UIOutput, the name it had here


class SavedResult(dict):
    """``{"filename", "subfolder", "type"}``: a file the node wrote, as the editor fetches it."""

    def __init__(self, filename: str, subfolder: str, type: FolderType):  # noqa: A002 - ComfyUI's keyword
        super().__init__(filename=filename, subfolder=subfolder, type=FolderType(type).value)

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def subfolder(self) -> str:
        return self["subfolder"]

    @property
    def type(self) -> FolderType:
        return FolderType(self["type"])


class SavedImages(UIOutput):
    def __init__(self, results: list[SavedResult], is_animated: bool = False):
        self.results = results
        self.is_animated = is_animated

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"images": self.results}
        if self.is_animated:
            data["animated"] = (True,)
        return data


class SavedAudios(UIOutput):
    def __init__(self, results: list[SavedResult]):
        self.results = results

    def as_dict(self) -> dict[str, Any]:
        return {"audio": self.results}


def save_images(
    images: Any, filename_prefix: str, folder_type: FolderType, compress_level: int = 4
) -> list[SavedResult]:
    """Write an IMAGE batch (B, H, W, C floats in 0..1) as PNG files; one result per image."""
    import numpy as np
    from PIL import Image

    folder = (
        folder_paths.get_output_directory()
        if folder_type == FolderType.output
        else folder_paths.get_temp_directory()
    )
    full_folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        filename_prefix, folder, images[0].shape[1], images[0].shape[0]
    )
    results = []
    for image in images:
        pixels = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
        safe_paths.still_inside(full_folder, folder)
        file, counter = _save_new(Image.fromarray(pixels), full_folder, name, counter, compress_level)
        results.append(SavedResult(file, subfolder, folder_type))
        counter += 1
    return results


def _save_new(img: Any, folder: str, name: str, counter: int, compress_level: int) -> tuple[str, int]:
    """Write ``<name>_<counter:05>_.png`` as a new file: never over (or through) an existing name."""
    while True:
        file = f"{name}_{counter:05}_.png"
        try:
            with open(os.path.join(folder, file), "xb") as fh:
                img.save(fh, format="PNG", compress_level=compress_level)
            return file, counter
        except FileExistsError:
            counter += 1


class ImageSaveHelper:
    save_images = staticmethod(save_images)


class PreviewImage(UIOutput):
    def __init__(self, image: Any, animated: bool = False, cls: Any = None, **kwargs: Any):
        suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
        self.values = save_images(image, f"ComfyUI_temp_{suffix}", FolderType.temp, compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    def __init__(self, mask: Any, animated: bool = False, cls: Any = None, **kwargs: Any):
        preview = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(preview, animated, cls, **kwargs)


class PreviewVideo(UIOutput):
    def __init__(self, values: list[SavedResult | dict[str, Any]], **kwargs: Any):
        self.values = values

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.values, "animated": (True,)}


class PreviewUI3D(UIOutput):
    def __init__(self, model_file: Any, camera_info: Any, **kwargs: Any):
        self.model_file = model_file
        self.camera_info = camera_info

    def as_dict(self) -> dict[str, Any]:
        return {"result": [self.model_file, self.camera_info]}


class PreviewText(UIOutput):
    def __init__(self, value: str, **kwargs: Any):
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": (self.value,)}
