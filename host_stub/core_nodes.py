"""The ComfyUI core nodes the shipped workflows need (LoadImage, SaveImage, PreviewImage), and
RebatchImages, which ComfyUI's own execution tests use.

Same names, inputs, outputs and file naming as ComfyUI's (written afresh for the stub). The
frontend-only nodes of the UI format (Note, MarkdownNote, Reroute, PrimitiveNode) never execute;
:mod:`host_stub.ui_format` handles them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import string
from typing import Any

from host_stub import safe_paths, shim

log = logging.getLogger(__name__)

_STAGING_PREFIX = ".host_stub-tmp-"  # hidden: a PNG being written, renamed once complete


def _folder_paths() -> Any:
    return shim.module("folder_paths")


class LoadImage:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        fp = _folder_paths()
        # Only regular files that stay in the folder: a symlink out of it is not listed.
        files = fp.filter_files_content_types(safe_paths.listed_files(fp.get_input_directory()), ["image"])
        return {"required": {"image": (sorted(files), {"image_upload": True})}}

    def load_image(self, image: str) -> tuple[Any, Any]:
        from PIL import Image

        with _open_image(image) as fh, Image.open(fh) as img:
            return _frames_and_masks(img)

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:  # noqa: N802 - ComfyUI's name
        # Reads the file it would load and no more: a regular file inside its folder, up to its size.
        with _open_image(image) as fh:
            return safe_paths.file_digest(fh)

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:  # noqa: N802 - ComfyUI's name
        try:
            safe_paths.regular_file(safe_paths.resolve_annotated(image, _folders()))
        except safe_paths.UnsafePath as exc:
            return f"Invalid image file: {image}: {exc}"
        except OSError:
            return f"Invalid image file: {image}"
        return True


def _folders() -> dict[str, str]:
    fp = _folder_paths()
    return {
        "input": fp.get_input_directory(),
        "output": fp.get_output_directory(),
        "temp": fp.get_temp_directory(),
    }


def _open_image(image: str) -> Any:
    """The image file a LoadImage name stands for, checked and open; a refusal names the input."""
    try:
        return safe_paths.open_annotated(image, _folders())
    except safe_paths.UnsafePath as exc:
        log.warning("LoadImage refused %r: %s", image, exc)
        raise safe_paths.UnsafePath(f"image {image!r}: {exc}") from None


def _frames_and_masks(img: Any) -> tuple[Any, Any]:
    """ComfyUI's LoadImage: every frame the size of the first, as a batch (MPO files: the first)."""
    import numpy as np
    import torch
    from PIL import ImageOps, ImageSequence

    frames, masks = [], []
    size = None
    for frame in ImageSequence.Iterator(img):
        frame = ImageOps.exif_transpose(frame)
        if frame.mode == "I":  # 16-bit greyscale PNGs: bring 0..65535 down to 0..255
            frame = frame.point(lambda v: v * (1 / 255))
        rgb = frame.convert("RGB")
        size = size or rgb.size
        if rgb.size != size:  # ComfyUI keeps only frames the size of the first
            continue
        frames.append(torch.from_numpy(np.array(rgb).astype(np.float32) / 255.0)[None])
        masks.append(_mask_of(frame, np, torch).unsqueeze(0))
    if len(frames) > 1 and img.format != "MPO":
        return torch.cat(frames, dim=0), torch.cat(masks, dim=0)
    return frames[0], masks[0]


def _mask_of(frame: Any, np: Any, torch: Any) -> Any:
    """ComfyUI's mask convention: 1 where the image is transparent, a 64x64 zero mask if opaque."""
    if "A" in frame.getbands():
        alpha = np.array(frame.getchannel("A")).astype(np.float32) / 255.0
        return 1.0 - torch.from_numpy(alpha)
    if frame.mode == "P" and "transparency" in frame.info:
        alpha = np.array(frame.convert("RGBA").getchannel("A")).astype(np.float32) / 255.0
        return 1.0 - torch.from_numpy(alpha)
    return torch.zeros((64, 64), dtype=torch.float32, device="cpu")


class SaveImage:
    CATEGORY = "image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True

    def __init__(self) -> None:
        self.output_dir = _folder_paths().get_output_directory()
        self.type = "output"
        self.prefix_append = ""
        self.compress_level = 4

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": (
                    "STRING",
                    {"default": "ComfyUI", "tooltip": "The prefix for the file to save."},
                ),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save_images(
        self, images: Any, filename_prefix: str = "ComfyUI", prompt: Any = None, extra_pnginfo: Any = None
    ) -> dict[str, Any]:
        import numpy as np
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        filename_prefix += self.prefix_append
        folder, filename, counter, subfolder, _ = _folder_paths().get_save_image_path(
            filename_prefix, self.output_dir, images[0].shape[1], images[0].shape[0]
        )
        results = []
        for batch_number, image in enumerate(images):
            pixels = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
            metadata = PngInfo()
            if prompt is not None:
                metadata.add_text("prompt", json.dumps(prompt))
            for key, value in (extra_pnginfo or {}).items():
                metadata.add_text(key, json.dumps(value))
            name = filename.replace("%batch_num%", str(batch_number))
            safe_paths.still_inside(folder, self.output_dir)  # not swapped for a symlink meanwhile
            file, counter = _write_new_png(
                Image.fromarray(pixels), folder, name, counter, metadata, self.compress_level
            )
            results.append({"filename": file, "subfolder": subfolder, "type": self.type})
            counter += 1
        return {"ui": {"images": results}}


def _write_new_png(
    img: Any, folder: str, name: str, counter: int, metadata: Any, compress_level: int
) -> tuple[str, int]:
    """Write ``<name>_<counter:05>_.png``, moving the counter on rather than overwriting a file.

    The PNG is written to a hidden file in ``folder`` first and only then given its name, so a
    write that fails (a full disk) leaves no partial file behind.
    """
    staging = os.path.join(folder, f"{_STAGING_PREFIX}{secrets.token_hex(8)}.png")
    try:
        with open(staging, "xb") as fh:
            img.save(fh, format="PNG", pnginfo=metadata, compress_level=compress_level)
        while True:
            file = f"{name}_{counter:05}_.png"
            try:
                _publish(staging, os.path.join(folder, file))
                return file, counter
            except FileExistsError:
                counter += 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)


def _publish(staging: str, final: str) -> None:
    """Give the finished ``staging`` file the name ``final``; FileExistsError if that name is taken."""
    try:
        os.link(staging, final)  # atomic, and never replaces a file
    except FileExistsError:
        raise
    except OSError:
        # No hard links on this file system: reserve the name, then move the finished file onto it.
        os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.replace(staging, final)


class PreviewImage(SaveImage):
    def __init__(self) -> None:
        self.output_dir = _folder_paths().get_temp_directory()
        self.type = "temp"
        self.prefix_append = "_temp_" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
        self.compress_level = 1

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {
            "required": {"images": ("IMAGE",)},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }


class RebatchImages:
    """Regroups a list of image batches into batches of ``batch_size`` images (the last may be smaller).

    Both inputs arrive as lists (INPUT_IS_LIST): every batch of the list is split into its
    images, in order, and those are joined again ``batch_size`` at a time. The images must all
    have the same size, as for any batch.
    """

    CATEGORY = "image/batch"
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_IS_LIST = (True,)
    INPUT_IS_LIST = True
    FUNCTION = "rebatch"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return {
            "required": {"images": ("IMAGE",), "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}
        }

    def rebatch(self, images: list[Any], batch_size: list[int]) -> tuple[list[Any]]:
        import torch

        size = batch_size[0]
        singles = [batch[i : i + 1] for batch in images for i in range(batch.shape[0])]
        return ([torch.cat(singles[start : start + size], dim=0) for start in range(0, len(singles), size)],)


NODE_CLASS_MAPPINGS: dict[str, type] = {
    "LoadImage": LoadImage,
    "SaveImage": SaveImage,
    "PreviewImage": PreviewImage,
    "RebatchImages": RebatchImages,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadImage": "Load Image",
    "SaveImage": "Save Image",
    "PreviewImage": "Preview Image",
    "RebatchImages": "Rebatch Images",
}
