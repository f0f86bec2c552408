"""`serve`'s HTTP endpoints over real HTTP, in ComfyUI's shapes: prompt, queue, history, interrupt,
free, view, upload, object_info, system_stats, embeddings, and the /api twins."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading

import pytest
from PIL import Image

from host_stub import Host
from host_stub.shim import model_management
from tests.host_stub.serve_support import PACKS, REPO, SERVE_PACKS, Client, InProcess, chain, node, upload

values = itertools.count(1)  # a fresh value per prompt keeps the output cache from answering


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_api")
    (root / "input").mkdir()
    packs = [PACKS / "arith", PACKS / "features", SERVE_PACKS / "serving"]
    host = Host(packs=packs, input_dir=root / "input", output_dir=root / "output", models_dir=root / "models")
    server = InProcess(host, root / "queue.sqlite3")
    server.root = root
    yield server
    server.stop()


@pytest.fixture
def api(served):
    client = Client(served.base)
    client.wait_idle()
    return client


def slow(seconds: float = 2.0) -> dict:
    return chain(value=next(values), steps=100, delay=seconds / 100)


def test_a_queued_prompt_runs_and_its_history_has_comfyuis_shape(api):
    prompt = chain(value=next(values))
    answer = api.queue(prompt, client_id="c1", extra_data={"extra_pnginfo": {"workflow": {"n": 1}}})
    assert set(answer) == {"prompt_id", "number", "node_errors"} and answer["node_errors"] == {}
    assert isinstance(answer["number"], int)
    entry = api.history(answer["prompt_id"])
    assert set(entry) == {"prompt", "outputs", "status", "meta"}
    number, prompt_id, ran, extra, outputs = entry["prompt"]
    assert (number, prompt_id, ran, outputs) == (answer["number"], answer["prompt_id"], prompt, ["3"])
    assert extra == {"extra_pnginfo": {"workflow": {"n": 1}}, "client_id": "c1"}
    assert entry["outputs"] == {"3": {"values": [prompt["1"]["inputs"]["value"] + 2]}}
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    events = [event for event, _ in entry["status"]["messages"]]
    assert events == ["execution_start", "execution_cached", "execution_success"]
    meta = {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}
    assert entry["meta"]["3"] == meta


def test_invalid_prompts_get_400_with_comfyuis_errors(api):
    status, body = api.post("/prompt", {"prompt": {"1": node("IntConst", value=1000), "2": node(
        "Show", value=["1", 0])}})
    assert status == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "value_bigger_than_max"
    status, body = api.post("/prompt", {"client_id": "x"})
    assert status == 400 and body == {"error": {"type": "no_prompt", "message": "No prompt provided",
                                                "details": "No prompt provided", "extra_info": {}},
                                      "node_errors": {}}
    status, body = api.post("/prompt", {"prompt": {"1": node("Nope")}})
    assert status == 400 and body["error"]["type"] == "invalid_prompt"
    for bad in ([1, 2], {"1": "not a node"}, {"1": {"class_type": "Show"}}):
        status, body = api.post("/prompt", {"prompt": bad})
        assert status == 400 and body["error"]["type"] == "invalid_prompt", bad
    for field, value in (("number", "x"), ("extra_data", []), ("partial_execution_targets", "3")):
        status, body = api.post("/prompt", {"prompt": chain(), field: value})
        assert status == 400 and field in body["error"]["message"]
    assert api.get("/queue")[1] == {"queue_running": [], "queue_pending": []}


def test_partial_execution_targets_run_only_those_outputs(api):
    value = next(values)
    prompt = {**chain(value=value), "4": node("Add", a=["1", 0], b=10), "5": node("Show", value=["4", 0])}
    answer = api.queue(prompt, partial_execution_targets=["5"])
    entry = api.history(answer["prompt_id"])
    assert entry["prompt"][4] == ["5"] and entry["outputs"] == {"5": {"values": [value + 10]}}


def test_front_and_number_order_the_queue_and_delete_takes_items_off(api):
    blocker = api.queue(slow())["prompt_id"]
    api.wait_running(blocker)
    a = api.queue(chain(value=next(values)))
    b = api.queue(chain(value=next(values)))
    c = api.queue(chain(value=next(values)), front=True)
    d = api.queue(chain(value=next(values)), number=-1000)
    assert c["number"] == -(b["number"] + 1) and d["number"] == -1000.0
    status, queue = api.get("/queue")
    assert status == 200 and [item[1] for item in queue["queue_running"]] == [blocker]
    order = [item[1] for item in queue["queue_pending"]]
    assert order == [d["prompt_id"], c["prompt_id"], a["prompt_id"], b["prompt_id"]]
    assert api.get("/prompt")[1] == {"exec_info": {"queue_remaining": 5}}
    assert api.post("/queue", {"delete": [b["prompt_id"], "no-such-prompt"]}) == (200, b"")
    assert [item[1] for item in api.get("/queue")[1]["queue_pending"]] == order[:3]
    api.post("/interrupt", {"prompt_id": blocker})
    for answer in (d, c, a):
        api.history(answer["prompt_id"])
    finished = list(api.get("/history")[1])
    assert finished[-3:] == [d["prompt_id"], c["prompt_id"], a["prompt_id"]]
    assert b["prompt_id"] not in finished


def test_clearing_the_queue_leaves_the_running_prompt(api):
    blocker = api.queue(slow(1.0))["prompt_id"]
    api.wait_running(blocker)
    pending = [api.queue(chain(value=next(values)))["prompt_id"] for _ in range(3)]
    assert api.post("/queue", {"clear": True})[0] == 200
    queue = api.get("/queue")[1]
    assert queue["queue_pending"] == [] and [i[1] for i in queue["queue_running"]] == [blocker]
    assert api.history(blocker)["status"]["status_str"] == "success"
    assert all(api.get(f"/history/{p}")[1] == {} for p in pending)


def test_deleting_the_running_prompt_interrupts_it(api):
    running = api.queue(slow(10.0))["prompt_id"]
    api.wait_running(running)
    assert api.post("/queue", {"delete": [running]})[0] == 200
    entry = api.history(running, timeout=5)
    assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert entry["status"]["messages"][-1][1]["node_id"] == "2"


def test_interrupt_stops_only_the_prompt_named_and_takes_a_pending_one_off(api):
    running = api.queue(slow(10.0))["prompt_id"]
    api.wait_running(running)
    pending = api.queue(chain(value=next(values)))["prompt_id"]
    assert api.post("/interrupt", {"prompt_id": pending})[0] == 200  # pending: taken off the queue
    assert api.post("/interrupt", {"prompt_id": "not-queued"})[0] == 200
    queue = api.get("/queue")[1]
    assert queue["queue_pending"] == [] and [i[1] for i in queue["queue_running"]] == [running]
    assert api.post("/interrupt", {"prompt_id": running})[0] == 200
    assert api.history(running, timeout=5)["status"]["messages"][-1][0] == "execution_interrupted"
    again = api.queue(slow(10.0))["prompt_id"]
    api.wait_running(again)
    assert api.post("/api/interrupt", raw=b"")[0] == 200  # global, no body, the /api twin
    assert api.history(again, timeout=5)["status"]["messages"][-1][0] == "execution_interrupted"


def test_history_lists_with_max_items_and_offset_and_deletes(api):
    assert api.post("/history", {"clear": True})[0] == 200
    assert api.get("/history")[1] == {}
    ids = [api.queue(chain(value=next(values)))["prompt_id"] for _ in range(4)]
    for prompt_id in ids:
        api.history(prompt_id)
    assert list(api.get("/history")[1]) == ids
    assert list(api.get("/history?max_items=2")[1]) == ids[2:]  # the newest, as ComfyUI
    assert list(api.get("/history?max_items=2&offset=1")[1]) == ids[1:3]
    assert list(api.get("/history?offset=3")[1]) == ids[3:]
    assert list(api.get("/history?max_items=10")[1]) == ids
    assert api.get("/history?max_items=two")[0] == 400
    assert api.post("/history", {"delete": [ids[0], "unknown"]})[0] == 200
    assert list(api.get("/history")[1]) == ids[1:]
    assert api.get(f"/history/{ids[0]}") == (200, {})  # ComfyUI's answer for an unknown id
    assert list(api.get(f"/api/history/{ids[1]}")[1]) == [ids[1]]
    assert api.post("/history", {"clear": True})[0] == 200 and api.get("/history")[1] == {}


def test_two_clients_queueing_at_once_all_run(api):
    answers: list[dict] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            answer = api.queue(chain(value=next(values)))
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({a["number"] for a in answers}) == 10 and len({a["prompt_id"] for a in answers}) == 10
    for answer in answers:
        assert api.history(answer["prompt_id"])["status"]["completed"]


def test_a_prompt_id_already_queued_is_refused(api):
    blocker = api.queue(slow(1.0), prompt_id="mine")["prompt_id"]
    assert blocker == "mine"
    status, body = api.post("/prompt", {"prompt": chain(value=next(values)), "prompt_id": "mine"})
    assert status == 400 and body["error"]["type"] == "prompt_id_in_use"
    api.history("mine")


def test_sensitive_extra_data_is_used_but_never_stored(api, served):
    answer = api.queue(chain(value=next(values)), extra_data={"api_key_comfy_org": "sekrit"})
    entry = api.history(answer["prompt_id"])
    assert "api_key_comfy_org" not in entry["prompt"][3]
    assert b"sekrit" not in b"".join(p.read_bytes() for p in served.root.glob("queue.sqlite3*"))


def test_upload_and_view_stay_in_their_folders_and_dedupe_names(api, served):
    png = io.BytesIO()
    Image.new("RGBA", (4, 3), (255, 0, 0, 128)).save(png, format="PNG")
    data = png.getvalue()
    assert upload(api.base, "red.png", data) == (200, {"name": "red.png", "subfolder": "", "type": "input"})
    assert upload(api.base, "red.png", data)[1]["name"] == "red.png"  # the same bytes: kept as is
    assert upload(api.base, "red.png", data + b"x")[1]["name"] == "red (1).png"
    assert upload(api.base, "red.png", b"new", overwrite="true")[1]["name"] == "red.png"
    assert (served.root / "input" / "red.png").read_bytes() == b"new"
    answer = upload(api.base, "r.png", data, subfolder="sub/dir", type="temp")
    assert answer == (200, {"name": "r.png", "subfolder": "sub/dir", "type": "temp"})
    status, body, = api.get("/view?filename=r.png&subfolder=sub/dir&type=temp")
    assert status == 200 and body == data
    assert api.get("/view?filename=r.png%20%5Btemp%5D&subfolder=sub/dir")[1] == data
    status, body = api.get("/view?filename=r.png&subfolder=sub/dir&type=temp&preview=webp;50")
    assert status == 200 and Image.open(io.BytesIO(body)).format == "WEBP"
    status, body = api.get("/view?filename=r.png&subfolder=sub/dir&type=temp&channel=a")
    assert Image.open(io.BytesIO(body)).getchannel("A").getpixel((0, 0)) == 128
    assert api.get("/view?filename=missing.png")[0] == 404
    assert api.get("/view")[0] == 404
    assert upload(api.base, "x.png", data, type="models")[0] == 400
    assert not list((served.root / "input").glob(".upload-*"))  # no staging file left behind


def test_an_output_written_by_a_prompt_comes_back_through_view(api):
    prompt = {"1": node("Gradient", width=6, height=2, batch=1),
              "2": node("SaveImage", images=["1", 0], filename_prefix=f"grad/{next(values)}")}
    entry = api.history(api.queue(prompt)["prompt_id"])
    (image,) = entry["outputs"]["2"]["images"]
    query = f"filename={image['filename']}&subfolder={image['subfolder']}&type={image['type']}"
    status, body = api.get("/view?" + query)
    assert status == 200 and Image.open(io.BytesIO(body)).size == (6, 2)


def test_a_full_disk_leaves_no_partial_file_and_the_error_in_history(api, served):
    """Simulated: the node's write fails with ENOSPC (test_serve_i2v fills a real tmpfs)."""
    prompt = {"1": node("SaveText", text="x" * 100, filename="full.txt", fail_after=10)}
    entry = api.history(api.queue(prompt)["prompt_id"])
    event, error = entry["status"]["messages"][-1]
    assert event == "execution_error" and error["exception_type"] == "OSError"
    assert "No space left on device" in error["exception_message"]
    assert not [p for p in (served.root / "output").iterdir() if "full.txt" in p.name]


def test_object_info_and_its_api_twin(api):
    status, info = api.get("/object_info")
    assert status == 200 and {"IntConst", "Show", "SaveImage", "LoadImage"} <= set(info)
    assert api.get("/api/object_info")[1] == info
    assert api.get("/object_info/Show")[1] == {"Show": info["Show"]}
    assert api.get("/object_info/NoSuchNode") == (200, {})


def test_free_asks_the_model_manager_to_unload(api):
    before = model_management.calls["unload_all_models"]
    assert api.post("/free", {"unload_models": True, "free_memory": True})[0] == 200
    api.queue(chain(value=next(values)))  # the worker applies the flags between prompts
    api.wait_idle()
    assert model_management.calls["unload_all_models"] > before


def test_system_stats_embeddings_and_model_lists(api, served):
    status, stats = api.get("/system_stats")
    assert status == 200 and {"os", "ram_total", "ram_free", "python_version", "argv"} <= set(stats["system"])
    (device,) = stats["devices"]
    assert set(device) == {"name", "type", "index", "vram_total", "vram_free", "torch_vram_total",
                           "torch_vram_free"}
    (served.root / "models" / "embeddings").mkdir(parents=True)
    (served.root / "models" / "embeddings" / "happy.safetensors").write_bytes(b"")
    assert api.get("/embeddings") == (200, ["happy"])
    assert "checkpoints" in api.get("/models")[1]
    assert api.get("/api/models/embeddings") == (200, ["happy.safetensors"])
    assert api.get("/models/nope")[0] == 404


def test_unknown_routes_and_methods_answer_json(api):
    status, body = api.get("/no/such/route")
    assert status == 404 and body["error"]["type"] == "http_error"
    status, body = api.post("/object_info", {})
    assert status == 405 and body["error"]["type"] == "http_error"


def test_the_readme_example_client_works(api, tmp_path):
    readme = (REPO / "host_stub" / "README.md").read_text()
    code = readme.split("### Example client", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README example", "exec"), namespace)
    workflow = tmp_path / "workflow_api.json"
    prefix = f"readme/{next(values)}"
    workflow.write_text(json.dumps({"1": node("Gradient", width=5, height=3, batch=1),
                                    "2": node("SaveImage", images=["1", 0], filename_prefix=prefix)}))
    entry = asyncio.run(namespace["run"](api.base, str(workflow), save_to=str(tmp_path)))
    assert entry["status"]["status_str"] == "success"
    (saved,) = tmp_path.glob("*.png")
    assert Image.open(saved).size == (5, 3)
