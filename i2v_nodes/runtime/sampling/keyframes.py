"""I2VSample's ``end_image``: which models take one, the checks that refuse what they cannot, and the
keyframes each start image's clips are conditioned on.

A variant takes images at later frames when its family's spec says so (``FamilySpec.keyframes``): Wan
on the last frame, LTX-Video 0.9.5+ and LTX-2 at any frame. The end image is prepared exactly as the
start image is (``Family.prepare_image``: centre-cropped to the output's aspect, then resized to
width x height), so an end image of another size than the start image needs no care. A batch of end
images pairs with the batch of start images, image j with end image j, or one end image serves every
start image.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.families.contract.jobs import Keyframe
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.sampling.settings import images_to_pil

END_IMAGE = "end_image"


def capable_models() -> str:
    """The models that take an end image, from the registry: ``Wan 2.1, Wan 2.2 A14B, ... and LTX-2``
    (a family by its title where all its variants take one, else by the variants that do)."""
    names = []
    for family in registry.REGISTERED:
        takes = [variant for variant in family.spec.rules if variant in family.spec.keyframes]
        if takes and len(takes) == len(family.spec.rules):
            names.append(family.title)
        else:
            names += [family.spec.variant_titles.get(variant, variant) for variant in takes]
    if len(names) < 2:
        return "".join(names) or "none"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def end_images(handle: ModelHandle, end_image: Any, starts: int) -> list[Image.Image]:
    """The end images as PIL, one per start image (``starts`` of them), or none; raises
    :class:`InputError` naming ``end_image`` for anything the model cannot take."""
    takes = handle.family.spec.keyframes.get(handle.variant)
    if end_image is None:
        if takes is not None and takes.required:
            raise InputError(END_IMAGE, f"{_model(handle)} is a first-last-frame model: it needs an end "
                                        "image (link one here), or use an image-to-video model for one image")
        return []
    if takes is None:
        raise InputError(END_IMAGE, f"{_model(handle)} cannot condition on a last frame: remove the end "
                                    f"image, or use a model that can ({capable_models()})")
    if isinstance(end_image, torch.Tensor) and end_image.dim() == 4 and end_image.shape[0] == 0:
        raise InputError(END_IMAGE, "the batch is empty: give at least one image")
    images = images_to_pil(end_image, END_IMAGE)
    if len(images) not in (1, starts):
        raise InputError(END_IMAGE, f"{len(images)} end images for {starts} start images (image): give one "
                                    "end image per start image, in the same order, or one for all of them")
    return images * starts if len(images) == 1 else images


def keyframes_of(end: Image.Image | None, num_frames: int) -> tuple[Keyframe, ...]:
    """What one start image's clips are conditioned on besides it: the end image on the last frame."""
    return () if end is None else (Keyframe(end, num_frames - 1),)


def images_per_clip(end_image: Any) -> int:
    """Images each clip is conditioned on, for the memory plan (2 with an end image)."""
    return 1 if end_image is None else 2


def _model(handle: ModelHandle) -> str:
    title = handle.family.spec.variant_titles.get(handle.variant, handle.family.title)
    return f"{handle.name} ({title})"
