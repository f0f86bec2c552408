"""`serve` started the way tools written for ComfyUI start ComfyUI: its folder flags,
extra_model_paths.yaml (custom_nodes as packs, model folders), --cache-lru, --cpu, and flags that
mean nothing here, named once in the log."""

from __future__ import annotations

from tests.host_stub.serve_support import PACKS, Client, Subprocess, chain, upload


def test_comfyuis_flags_are_understood_or_named_once(tmp_path):
    extra = tmp_path / "extra_model_paths.yaml"
    (tmp_path / "elsewhere" / "ckpts").mkdir(parents=True)
    (tmp_path / "elsewhere" / "ckpts" / "model.safetensors").write_bytes(b"")
    extra.write_text(
        "mine:\n"
        f"    base_path: {tmp_path / 'elsewhere'}\n"
        "    checkpoints: ckpts/\n"
        "packs:\n"
        f"    custom_nodes: {PACKS}\n"
    )
    served = Subprocess(
        "--extra-model-paths-config", str(extra), "--output-directory", str(tmp_path / "out"),
        "--input-directory", str(tmp_path / "in"), "--temp-directory", str(tmp_path / "tmp"),
        "--user-directory", str(tmp_path / "user"), "--cache-lru", "5", "--cpu",
        "--database-url", "sqlite:///:memory:", "--lowvram", "--preview-method", "auto",
        "--disable-auto-launch", "--listen", "127.0.0.1",
    )
    try:
        api = Client(served.base)
        log = "".join(served.log)
        ignored = [line for line in served.log if "ignoring ComfyUI flags" in line]
        assert len(ignored) == 1
        for flag in ("--database-url", "--lowvram", "--preview-method", "--disable-auto-launch"):
            assert flag in ignored[0]
        assert "--cache-lru" not in ignored[0] and "--user-directory" not in ignored[0]
        assert str(tmp_path / "user" / "host_stub" / "queue.sqlite3") in log
        info = api.get("/object_info")[1]
        assert {"IntConst", "MakeList", "Negate"} <= set(info)  # packs from custom_nodes
        assert "IMPORT FAILED" in log and "broken" in log  # the broken test pack, reported
        assert "model.safetensors" in api.get("/models/checkpoints")[1]
        assert upload(served.base, "t.png", b"x", type="temp")[0] == 200
        assert (tmp_path / "tmp" / "temp" / "t.png").is_file()  # ComfyUI's TEMP/temp
        assert upload(served.base, "i.png", b"x")[0] == 200 and (tmp_path / "in" / "i.png").is_file()
        entry = api.history(api.queue(chain(value=3))["prompt_id"])
        assert entry["status"]["completed"]
        assert api.get("/system_stats")[1]["devices"][0]["type"] == "cpu"
    finally:
        assert served.stop() == 0
