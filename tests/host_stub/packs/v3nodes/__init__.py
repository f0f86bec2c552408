"""Test pack: V3 nodes (comfy_api.latest io.ComfyNode), registered through comfy_entrypoint."""

import asyncio
import os
from fractions import Fraction

import folder_paths
from comfy_api.input_impl import VideoFromComponents
from comfy_api.latest import ComfyExtension, io, ui
from comfy_api.util import VideoCodec, VideoComponents, VideoContainer
from comfy_api.v0_0_2 import ComfyAPI, ComfyAPISync
from comfy_execution.graph_utils import GraphBuilder

CALLS = []  # (node, hidden unique_id) of every V3Scale call
api, api_sync = ComfyAPI(), ComfyAPISync()


class V3Scale(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Scale",
            display_name="V3 Scale",
            category="test/v3",
            description="Scales an integer.",
            inputs=[
                io.Int.Input("value", force_input=True),
                io.Float.Input("factor", default=2.0, min=0.0, max=10.0, step=0.5, tooltip="times what"),
                io.Combo.Input("mode", options=["round", "floor"], default="round"),
                io.Boolean.Input("negate", default=False, optional=True, label_on="yes", label_off="no"),
            ],
            outputs=[io.Int.Output(display_name="scaled", tooltip="the result")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, value, factor, mode, negate=False):
        CALLS.append(("V3Scale", cls.hidden.unique_id))
        scaled = value * factor
        result = round(scaled) if mode == "round" else int(scaled // 1)
        return io.NodeOutput(-result if negate else result)


class V3Show(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Show",
            category="test/v3",
            inputs=[io.AnyType.Input("value")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(ui=ui.PreviewText(f"{value} from {sorted(cls.hidden.prompt)}"))


class V3AsyncDouble(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3AsyncDouble",
            category="test/v3",
            inputs=[io.Int.Input("value", force_input=True), io.Float.Input("seconds", default=0.2)],
            outputs=[io.Int.Output()],
        )

    @classmethod
    async def execute(cls, value, seconds):
        await asyncio.sleep(seconds)
        return (value * 2,)


class V3Checked(io.ComfyNode):
    """validate_inputs refuses 13; fingerprint_inputs makes an odd `salt` always run again."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Checked",
            category="test/v3",
            inputs=[io.Int.Input("value", default=1), io.Int.Input("salt", default=0)],
            outputs=[io.Int.Output()],
        )

    @classmethod
    def validate_inputs(cls, value, salt):
        return "13 is unlucky" if value == 13 else True

    @classmethod
    def fingerprint_inputs(cls, value, salt):
        return float("nan") if salt % 2 else salt

    @classmethod
    def execute(cls, value, salt):
        return io.NodeOutput(value)


class V3Pick(io.ComfyNode):
    """Lazy inputs: asks only for the one it uses."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Pick",
            category="test/v3",
            inputs=[
                io.Boolean.Input("use_a", default=True),
                io.Int.Input("a", lazy=True, force_input=True),
                io.Int.Input("b", lazy=True, force_input=True),
            ],
            outputs=[io.Int.Output()],
        )

    @classmethod
    def check_lazy_status(cls, use_a, a=None, b=None):
        wanted = "a" if use_a else "b"
        return [wanted] if (a if use_a else b) is None else []

    @classmethod
    def execute(cls, use_a, a=None, b=None):
        return io.NodeOutput(a if use_a else b)


class V3Expand(io.ComfyNode):
    """Expands into V3Scale twice (factor 2, then 3)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Expand",
            category="test/v3",
            inputs=[io.Int.Input("value", force_input=True)],
            outputs=[io.Int.Output()],
            enable_expand=True,
        )

    @classmethod
    def execute(cls, value):
        graph = GraphBuilder()
        twice = graph.node("V3Scale", value=value, factor=2.0, mode="round")
        thrice = graph.node("V3Scale", value=twice.out(0), factor=3.0, mode="round")
        return io.NodeOutput(thrice.out(0), expand=graph.finalize())


class V3Block(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Block",
            category="test/v3",
            inputs=[io.Int.Input("value", force_input=True)],
            outputs=[io.Int.Output()],
        )

    @classmethod
    def execute(cls, value):
        return io.NodeOutput(block_execution="stopped by V3Block")


class V3MakeVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3MakeVideo",
            category="test/v3",
            inputs=[io.Image.Input("images"), io.Float.Input("fps", default=8.0, min=1.0, max=120.0)],
            outputs=[io.Video.Output()],
        )

    @classmethod
    def execute(cls, images, fps):
        return io.NodeOutput(VideoFromComponents(VideoComponents(images=images, frame_rate=Fraction(fps))))


class V3SaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3SaveVideo",
            display_name="V3 Save Video",
            category="test/v3",
            inputs=[
                io.Video.Input("video"),
                io.String.Input("filename_prefix", default="video/v3"),
                io.Combo.Input("format", options=VideoContainer.as_input(), default="auto"),
                io.Combo.Input("codec", options=VideoCodec.as_input(), default="auto"),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, filename_prefix, format, codec):
        width, height = video.get_dimensions()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), width, height
        )
        file = f"{name}_{counter:05}_.{VideoContainer.get_extension(format)}"
        video.save_to(
            os.path.join(folder, file), format=format, codec=codec, metadata={"prompt": cls.hidden.prompt}
        )
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


class V3Progress(io.ComfyNode):
    """Reports three steps through comfy_api's set_progress (async, or the sync API)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="V3Progress",
            category="test/v3",
            inputs=[io.AnyType.Input("value"), io.Boolean.Input("use_sync", default=False)],
            outputs=[io.AnyType.Output()],
        )

    @classmethod
    async def execute(cls, value, use_sync):
        for step in range(1, 4):
            if use_sync:
                api_sync.execution.set_progress(value=step, max_value=3)
            else:
                await api.execution.set_progress(value=step, max_value=3)
            await asyncio.sleep(0.01)
        return io.NodeOutput(value)


class TestExtension(ComfyExtension):
    async def get_node_list(self):
        return [
            V3Scale,
            V3Show,
            V3AsyncDouble,
            V3Checked,
            V3Pick,
            V3Expand,
            V3Block,
            V3MakeVideo,
            V3SaveVideo,
            V3Progress,
        ]


async def comfy_entrypoint():
    return TestExtension()
