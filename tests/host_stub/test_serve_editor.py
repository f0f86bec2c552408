"""What the graph editor needs from `serve` besides the API: its files at /, settings, user data
(saved workflows), users, i18n, extensions, templates and model lists, in ComfyUI's shapes."""

from __future__ import annotations

import json

import pytest

from host_stub import Host
from tests.host_stub.serve_support import PACKS, Client, InProcess, request


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_editor")
    web = root / "web"
    (web / "extensions" / "core").mkdir(parents=True)
    (web / "assets").mkdir()
    (web / "index.html").write_text("<html>the editor</html>")
    (web / "extensions" / "core" / "widgets.js").write_text("// js")
    (web / "assets" / "app.css").write_text("body {}")
    (root / "models" / "checkpoints" / "sub").mkdir(parents=True)
    (root / "models" / "checkpoints" / "sub" / "m.safetensors").write_bytes(b"1234")
    (root / "models" / "checkpoints" / "notes.txt").write_text("not a model")
    host = Host(packs=[PACKS / "arith"], input_dir=root / "input", output_dir=root / "output",
                models_dir=root / "models")
    server = InProcess(host, root / "queue.sqlite3", user_dir=root / "user", web_root=web)
    server.root = root
    yield server
    server.stop()


@pytest.fixture
def api(served):
    return Client(served.base)


def test_the_editor_is_served_at_the_root_and_the_api_still_answers(api):
    status, body, headers = request(api.base + "/")
    assert status == 200 and body == b"<html>the editor</html>" and headers["Cache-Control"] == "no-cache"
    assert api.get("/assets/app.css") == (200, b"body {}")
    assert api.get("/prompt")[1] == {"exec_info": {"queue_remaining": 0}}
    assert api.get("/extensions") == (200, ["/extensions/core/widgets.js"])
    assert api.get("/extensions/core/widgets.js") == (200, b"// js")


def test_settings_are_kept_in_the_user_folder(api, served):
    assert api.get("/settings") == (200, {})
    assert api.post("/settings", {"Comfy.Locale": "en", "a": 1})[0] == 200
    assert api.post("/api/settings/Comfy.ColorPalette", "dark")[0] == 200
    assert api.get("/settings")[1] == {"Comfy.Locale": "en", "a": 1, "Comfy.ColorPalette": "dark"}
    assert api.get("/settings/a") == (200, 1) and api.get("/settings/unknown") == (200, None)
    stored = json.loads((served.root / "user" / "default" / "comfy.settings.json").read_text())
    assert stored["Comfy.ColorPalette"] == "dark"
    assert api.post("/settings", [1])[0] == 400


def test_user_data_saves_lists_moves_and_deletes_workflows(api):
    workflow = json.dumps({"nodes": [], "links": []}).encode()
    assert api.post("/userdata/workflows%2Fmine.json", raw=workflow) == (200, "workflows/mine.json")
    assert api.post("/userdata/workflows%2Fmine.json?overwrite=false", raw=b"{}")[0] == 409
    assert api.get("/userdata/workflows%2Fmine.json") == (200, {"nodes": [], "links": []})
    assert api.get("/userdata?dir=workflows") == (200, ["mine.json"])
    assert api.get("/userdata?dir=workflows&split=true") == (200, [["mine.json", "mine.json"]])
    (info,) = api.get("/userdata?dir=workflows&full_info=true")[1]
    assert info["path"] == "mine.json" and info["size"] == len(workflow)
    listing = api.get("/v2/userdata")[1]
    entries = [(e["path"], e["type"]) for e in listing]
    assert entries[0] == ("workflows", "directory") and ("workflows/mine.json", "file") in entries
    status, moved = api.post("/userdata/workflows%2Fmine.json/move/workflows%2Fold%2Fmine.json")
    assert (status, moved) == (200, "workflows/old/mine.json")
    assert api.get("/userdata?dir=workflows&recurse=true")[1] == ["old/mine.json"]
    status, _, _ = request(api.base + "/userdata/workflows%2Fold%2Fmine.json", "DELETE")
    assert status == 204 and api.get("/userdata/workflows%2Fold%2Fmine.json")[0] == 404
    assert api.get("/userdata?dir=nothing-here")[0] == 404


@pytest.mark.parametrize("path", ["/userdata/..%2F..%2Fqueue.sqlite3", "/userdata?dir=..",
                                  "/userdata?dir=%2Fetc", "/v2/userdata?path=..%2F..",
                                  "/userdata/%2Fetc%2Fpasswd"])
def test_user_data_stays_in_the_user_folder(api, path):
    status, body = api.get(path)
    assert status in (400, 403) and "error" in body


def test_the_editors_other_start_up_answers(api):
    assert api.get("/users") == (200, {"storage": "server", "migrated": True})
    assert api.get("/i18n") == (200, {})
    assert api.get("/workflow_templates") == (200, {})
    folders = {f["name"]: f["folders"] for f in api.get("/experiment/models")[1]}
    assert "checkpoints" in folders and "configs" not in folders
    (model,) = api.get("/experiment/models/checkpoints")[1]
    assert (model["name"], model["pathIndex"], model["size"]) == ("sub/m.safetensors", 0, 4)
    assert api.get("/experiment/models/nope")[0] == 404
    assert api.get("/models/checkpoints") == (200, ["sub/m.safetensors"])
