"""Test pack for the server tests: an output node whose disk fills up while it writes."""

import errno
import os

import folder_paths


class SaveText:
    """Writes ``text`` to the output folder through a hidden file that is renamed when complete;
    with ``fail_after`` >= 0 the disk is 'full' after that many bytes (OSError ENOSPC)."""

    CATEGORY = "test"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"default": "hello"}),
                "filename": ("STRING", {"default": "note.txt"}),
                "fail_after": ("INT", {"default": -1, "min": -1}),
            }
        }

    def save(self, text, filename, fail_after):
        folder = folder_paths.get_output_directory()
        os.makedirs(folder, exist_ok=True)
        final = os.path.join(folder, filename)
        staging = os.path.join(folder, f".{filename}.part")
        data = text.encode()
        try:
            with open(staging, "wb") as fh:
                if 0 <= fail_after < len(data):
                    fh.write(data[:fail_after])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), staging)
                fh.write(data)
            os.replace(staging, final)
        finally:
            if os.path.exists(staging):
                os.unlink(staging)
        return {"ui": {"texts": [{"filename": filename, "subfolder": "", "type": "output"}]}}


NODE_CLASS_MAPPINGS = {"SaveText": SaveText}
