"""The metadata sits where ComfyUI's frontend looks for it when a video is dropped on the editor.

These parsers are independent of ``video_metadata`` and follow the frontend's reading contract:
* mp4: ``moov/udta/meta`` with a ``keys`` box (mdta names) and an ``ilst`` whose items are numbered by
  key index and hold a ``data`` box; ``prompt``/``workflow`` compared case-insensitively.
* webm: EBML SimpleTag elements whose TagName is exactly ``PROMPT``/``WORKFLOW``, found within the
  first 2 MiB of the file (all the frontend reads).
* webp: chunks walked from byte 12 by ``8 + size`` until ``EXIF``; its first IFD's ASCII entries split
  at the first ':' into key and JSON; ``prompt`` in tag 0x0110 and ``workflow`` in 0x010F, as ComfyUI's
  SaveAnimatedWEBP writes them.
"""

from __future__ import annotations

import json
import struct

import pytest
import torch

from i2v_nodes.runtime.output.video import EncodeOptions, save_clip

FRONTEND_WEBM_READ_LIMIT = 2 * 1024 * 1024


def metadata() -> dict[str, str]:
    workflow = {"nodes": [{"id": i, "title": f"n{i} = ü; #"} for i in range(3000)], "links": []}
    return {"prompt": json.dumps({"1": {"class_type": "X", "inputs": {}}}), "workflow": json.dumps(workflow)}


def frames() -> torch.Tensor:
    return torch.rand(3, 24, 32, 3, generator=torch.Generator().manual_seed(7))


def boxes(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """Child boxes of an ISOBMFF range: type -> (payload start, box end)."""
    found = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        assert size >= header and pos + size <= end, "malformed box"
        found.setdefault(kind, (pos + header, pos + size))
        pos += size
    return found


def mp4_tags(data: bytes) -> dict[str, str]:
    top = boxes(data, 0, len(data))
    moov = boxes(data, *top[b"moov"])
    udta = boxes(data, *moov[b"udta"])
    meta_start, meta_end = udta[b"meta"]
    meta = boxes(data, meta_start + 4, meta_end)  # meta is a full box: skip version and flags
    keys_start, keys_end = meta[b"keys"]
    (count,) = struct.unpack_from(">I", data, keys_start + 4)
    names, pos = [], keys_start + 8
    for _ in range(count):
        size, namespace = struct.unpack_from(">I4s", data, pos)
        assert namespace == b"mdta"
        names.append(data[pos + 8:pos + size].decode())
        pos += size
    tags, pos = {}, meta[b"ilst"][0]
    while pos < meta[b"ilst"][1]:
        size, index = struct.unpack_from(">II", data, pos)
        data_start, data_end = boxes(data, pos + 8, pos + size)[b"data"]
        tags[names[index - 1].lower()] = data[data_start + 8:data_end].decode()  # skip type and locale
        pos += size
    return tags


def read_vint(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    length = next(i for i in range(1, 9) if first & (0x80 >> (i - 1)))
    value = first & (0xFF >> length)
    for byte in data[pos + 1:pos + length]:
        value = (value << 8) | byte
    return value, length


def webm_simple_tags(data: bytes) -> dict[str, str]:
    """SimpleTags inside the Tags element (scanning the whole file would also hit the two ID bytes
    by chance inside compressed frames)."""
    tags = {}
    start = data.find(b"\x12\x54\xc3\x67")  # the Tags master element
    assert start >= 0, "no Tags element"
    tags_size, tags_length = read_vint(data, start + 4)
    tags_end = start + 4 + tags_length + tags_size
    pos = data.find(b"\x67\xc8", start, tags_end)
    while pos >= 0:
        size, length = read_vint(data, pos + 2)
        body, end = pos + 2 + length, pos + 2 + length + size
        name = value = None
        inner = body
        while inner < end:
            element_id = data[inner:inner + 2]
            element_size, element_length = read_vint(data, inner + 2)
            content = data[inner + 2 + element_length:inner + 2 + element_length + element_size]
            if element_id == b"\x45\xa3":
                name = content.decode()
            elif element_id == b"\x44\x87":
                value = content.decode()
            inner += 2 + element_length + element_size
        if name is not None and value is not None:
            tags[name] = value
        pos = data.find(b"\x67\xc8", end, tags_end)
    return tags


def webp_exif_entries(data: bytes) -> dict[int, str]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos = 12
    while pos < len(data):
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if data[pos:pos + 4] == b"EXIF":
            exif = data[pos + 8:pos + 8 + size]
            break
        pos += 8 + size  # the frontend does not skip pad bytes, so every chunk before EXIF must be even
    else:
        raise AssertionError("no EXIF chunk")
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    assert exif[:2] == b"II"
    (ifd,) = struct.unpack_from("<I", exif, 4)
    (count,) = struct.unpack_from("<H", exif, ifd)
    entries = {}
    for i in range(count):
        tag, kind, length, offset = struct.unpack_from("<HHII", exif, ifd + 2 + 12 * i)
        if kind == 2:
            entries[tag] = exif[offset:offset + length - 1].decode("utf-8")
    return entries


def test_mp4_carries_prompt_and_workflow_as_mdta_keys(tmp_path):
    expected = metadata()
    saved = save_clip(frames(), tmp_path, "c", EncodeOptions(format="mp4-h264", metadata=expected))
    data = saved.path.read_bytes()
    tags = mp4_tags(data)
    assert json.loads(tags["prompt"]) == json.loads(expected["prompt"])
    assert json.loads(tags["workflow"]) == json.loads(expected["workflow"])
    top = boxes(data, 0, len(data))
    assert top[b"moov"][0] < top[b"mdat"][0]  # faststart: the tags are at the front of the file


def test_webm_carries_upper_case_simple_tags_within_the_frontend_read_limit(tmp_path):
    expected = metadata()
    saved = save_clip(frames(), tmp_path, "c", EncodeOptions(format="webm-vp9", metadata=expected))
    head = saved.path.read_bytes()[:FRONTEND_WEBM_READ_LIMIT]
    tags = webm_simple_tags(head)
    assert json.loads(tags["PROMPT"]) == json.loads(expected["prompt"])
    assert json.loads(tags["WORKFLOW"]) == json.loads(expected["workflow"])


@pytest.mark.parametrize("frame_count", [1, 3])
def test_webp_exif_uses_comfyui_tags_and_key_colon_json(tmp_path, frame_count):
    expected = metadata()
    saved = save_clip(frames()[:frame_count], tmp_path, "c", EncodeOptions(format="webp", metadata=expected))
    data = saved.path.read_bytes()
    entries = webp_exif_entries(data)
    assert entries[0x0110] == "prompt:" + expected["prompt"]
    assert entries[0x010F] == "workflow:" + expected["workflow"]
    assert data[12:16] == b"VP8X" and data[20] & 0x08  # the extended header announces the EXIF chunk
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8  # RIFF size covers the new chunk
