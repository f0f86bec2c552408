"""EncodeVideo: frames to mp4 / webm / gif / webp files in the output folder, with a UI preview."""

from __future__ import annotations

import json

from i2v_nodes import host
from i2v_nodes.nodes._common import CATEGORY, node_errors
from i2v_nodes.runtime.output import audio as audio_values
from i2v_nodes.runtime.output import video
from i2v_nodes.runtime.output.video_formats import FORMATS

TIPS = {
    "frames": "IMAGE frames, e.g. I2VSample's frames (all clips one after another).",
    "fps": "Frames per second of the file. Link I2VSample's fps here. GIF stores whole centiseconds, so "
           "its fps is approximate.",
    "format": "mp4-h264: plays everywhere. webm-vp9: smaller files, browsers. gif: universal but large and "
              "256 colours. webp: animated, smaller than gif, full colour.",
    "crf": "Quality for mp4 (0-51) and webm (0-63): lower is better and larger; 17-23 is visually good. "
           "webp quality is 100 - crf. gif ignores it.",
    "filename_prefix": "File name start, may include subfolders of the output folder: 'i2v/clip' gives "
                       "output/i2v/clip_00001_.mp4. %width%, %height%, %year%, %month%, %day%, %hour%, "
                       "%minute%, %second% are filled in. Never overwrites; '..' and absolute paths are "
                       "refused.",
    "loop_count": "gif and webp: how many times the animation plays, 0 = forever. mp4/webm ignore it.",
    "pingpong": "Play forward then backward (the end frames are not repeated), for seamless loops.",
    "save_metadata": "Embed the prompt and the workflow in the file, so dropping it on ComfyUI loads the "
                     "graph back.",
    "frames_per_clip": "Link I2VSample's frames_per_clip: one file per clip. Unlinked or 0: the whole batch "
                       "is one video.",
    "audio": "Sound for the video (AUDIO): I2VSample's audio, LoadAudio, or any node's. mp4 gets AAC, webm "
             "Opus; gif and webp have no sound and leave it out (the node says so). It is cut or padded "
             "with silence to each clip's exact length; one entry per clip, or one for all clips. More "
             "than 2 channels are down-mixed to stereo.",
}


class EncodeVideo:
    DESCRIPTION = (
        "Encodes frames into a video file with the ffmpeg bundled by imageio-ffmpeg (frames are streamed, "
        "the frame count is exact), one file per clip, with the workflow embedded and, if given, the sound "
        "(AAC in mp4, Opus in webm). Shows the videos in the UI and outputs their paths."
    )
    CATEGORY = CATEGORY
    FUNCTION = "encode"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("paths",)
    OUTPUT_TOOLTIPS = ("Absolute paths of the written files, one per line.",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": TIPS["frames"]}),
                "fps": ("FLOAT", {"default": 8.0, "min": 0.01, "max": video.MAX_FPS, "step": 0.01,
                                  "tooltip": TIPS["fps"]}),
                "format": (list(FORMATS), {"default": "mp4-h264", "tooltip": TIPS["format"]}),
                "crf": ("INT", {"default": 19, "min": 0, "max": 100, "tooltip": TIPS["crf"]}),
                "filename_prefix": ("STRING", {"default": "i2v/clip", "tooltip": TIPS["filename_prefix"]}),
                "loop_count": ("INT", {"default": 0, "min": 0, "max": video.MAX_LOOP_COUNT,
                                       "tooltip": TIPS["loop_count"]}),
                "pingpong": ("BOOLEAN", {"default": False, "tooltip": TIPS["pingpong"]}),
                "save_metadata": ("BOOLEAN", {"default": True, "tooltip": TIPS["save_metadata"]}),
            },
            "optional": {
                "frames_per_clip": ("INT", {"default": 0, "min": 0, "max": 100000, "forceInput": True,
                                            "tooltip": TIPS["frames_per_clip"]}),
                "audio": ("AUDIO", {"tooltip": TIPS["audio"]}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    def encode(self, frames, fps, format, crf, filename_prefix, loop_count, pingpong, save_metadata,  # noqa: A002
               frames_per_clip=0, audio=None, prompt=None, extra_pnginfo=None, unique_id=None):
        with node_errors("EncodeVideo", unique_id):
            metadata = _metadata(prompt, extra_pnginfo) if save_metadata else {}
            options = video.EncodeOptions(fps=float(fps), format=format, crf=crf, loop_count=loop_count,
                                          pingpong=bool(pingpong), metadata=metadata)
            clips = video.split_clips(video.check_frames(frames), frames_per_clip or None)
            sounds = [None] * len(clips)
            if audio is not None:
                seconds = video.clip_seconds(clips[0].shape[0], options)
                sounds = audio_values.for_clips(audio, len(clips), seconds)
            saved = [video.save_clip(clip, host.output_dir(), filename_prefix, options, sound)
                     for clip, sound in zip(clips, sounds, strict=True)]
        paths = "\n".join(str(s.path) for s in saved)
        ui = {"images": [s.ui_entry() for s in saved], "animated": (True,)}
        notes = sorted({s.audio for s in saved if s.audio})
        if notes:
            ui["text"] = notes  # what happened to the sound, shown with the node's output
        return {"ui": ui, "result": (paths,)}


def _metadata(prompt, extra_pnginfo) -> dict[str, str]:
    """What ComfyUI's own savers embed: the API prompt and every extra_pnginfo entry (the workflow)."""
    metadata = {}
    if prompt is not None:
        metadata["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        metadata[key] = json.dumps(value)
    return metadata
