"""companion.serve: the HTTP contract (in-process, as a real uvicorn server, and through the page in
headless Chromium), the ONNX and torch.export exports, the benchmark and the server helper."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from torch import nn

from companion import serve

NAMES = ("zero", "one", "two")


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3))


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def client() -> TestClient:
    return TestClient(serve.create_app(tiny_model(), NAMES, image_size=(28, 28)))


def test_health_and_page(client):
    assert client.get("/health").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "zero, one, two" in page.text


def test_predict_is_the_softmax_of_the_model_on_the_preprocessed_image(client):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    answer = client.post("/predict", files={"file": ("x.png", png(grey), "image/png")})
    assert answer.status_code == 200
    body = answer.json()
    x = torch.from_numpy(grey.astype(np.float32) / 255)[None, None]  # ToTensor, no normalisation
    expected = torch.softmax(tiny_model().eval()(x), dim=1)[0]
    assert list(body["probabilities"]) == list(NAMES)
    np.testing.assert_allclose(list(body["probabilities"].values()), expected.detach().numpy(), atol=1e-6)
    assert body["index"] == int(expected.argmax()) and body["label"] == NAMES[body["index"]]


def test_colour_and_other_sizes_are_converted_as_in_training(client):
    rgb = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    body = client.post("/predict", files={"file": ("x.png", png(rgb), "image/png")}).json()
    image = Image.fromarray(rgb).convert("L").resize((28, 28), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)[None, None]
    expected = torch.softmax(tiny_model().eval()(x), dim=1)[0].detach().numpy()
    np.testing.assert_allclose(list(body["probabilities"].values()), expected, atol=1e-6)
    x = serve.preprocess(png(rgb), (20, 24), grayscale=False)
    assert x.shape == (1, 3, 20, 24) and 0 <= float(x.min()) and float(x.max()) <= 1


@pytest.mark.parametrize("payload,status,words", [
    (b"", 400, "empty"),
    (b"this is not an image", 415, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 415, "not an image"),  # a truncated PNG
    (b"x" * (serve.MAX_UPLOAD_BYTES + 1), 413, "10 MiB"),
])
def test_bad_uploads_get_a_clear_4xx(client, payload, status, words):
    answer = client.post("/predict", files={"file": ("x.png", payload, "image/png")})
    assert answer.status_code == status and words in answer.json()["detail"]


def test_a_request_without_the_file_field_is_a_4xx(client):
    answer = client.post("/predict", data={"image": "x"})
    assert 400 <= answer.status_code < 500 and "detail" in answer.json()


@pytest.mark.parametrize("example_batch", [1, 2])
@pytest.mark.parametrize("dynamo", [True, False], ids=["torch.export exporter", "TorchScript exporter"])
def test_export_onnx_matches_the_model_with_any_batch(tmp_path, example_batch, dynamo, monkeypatch):
    # The TorchScript exporter is what the companion's floor (torch 2.3-2.5) uses.
    monkeypatch.setattr(serve, "_DYNAMO_ONNX", dynamo)
    model = tiny_model()
    path = serve.export_onnx(model, tmp_path / "model.onnx", torch.randn(example_batch, 1, 28, 28))
    onnx.checker.check_model(onnx.load(str(path)))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 28, 28)  # another batch size than the example's
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model.eval()(x).detach().numpy(), atol=1e-4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_real_uvicorn_server_round_trip():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "companion.serve", "--model", "fmnist5_backbone",
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for the server to listen
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    assert json.load(response) == {"status": "ok"}
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.5)
        image = np.zeros((28, 28), dtype=np.uint8)
        image[4:24, 10:18] = 255  # a bright vertical bar, something like trousers
        body, content_type = _multipart(png(image))
        request = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert set(answer) == {"label", "index", "probabilities"}
        assert len(answer["probabilities"]) == 5 and abs(sum(answer["probabilities"].values()) - 1) < 1e-5
        body, content_type = _multipart(b"not an image")
        request = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=30)
        assert error.value.code == 415 and "not an image" in json.load(error.value)["detail"]
    finally:
        server.terminate()
        server.wait(timeout=30)


# ----------------------------------------------------------------------------------------------
# the serve extra, torch.export, the benchmark helper


ROOT = Path(__file__).resolve().parents[1]


def test_the_requirements_are_the_serve_extra_and_only_missing_ones_are_named(monkeypatch):
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    assert sorted(serve.REQUIREMENTS.values()) == sorted(extra)
    assert serve.missing_requirements() == ""  # everything is installed here
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name in ("onnxruntime", "multipart") else real(name))
    numpy = f'"numpy=={importlib.metadata.version("numpy")}"'
    assert serve.missing_requirements() == (f'"{serve.REQUIREMENTS["multipart"]}" '
                                            f'"{serve.REQUIREMENTS["onnxruntime"]}" {numpy}')


@pytest.mark.parametrize("example_batch", [1, 3])
def test_export_program_round_trip_with_any_batch(tmp_path, example_batch):
    model = tiny_model()
    path = serve.export_program(model, tmp_path / "model.pt2", torch.randn(example_batch, 1, 28, 28))
    reloaded = torch.export.load(str(path)).module()
    x = torch.randn(5, 1, 28, 28)  # another batch size than the example's
    torch.testing.assert_close(reloaded(x), model.eval()(x).detach())


def test_export_program_saves_the_model_not_the_tensor_its_example_views(tmp_path):
    model = tiny_model()
    images = torch.randn(10_000, 1, 28, 28)  # 31 MB
    path = serve.export_program(model, tmp_path / "model.pt2", images[:2])
    assert path.stat().st_size < 200_000


def test_exports_run_the_model_in_eval_mode(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()).train()
    with torch.no_grad():
        model[1].running_mean.fill_(3.0)  # eval and train mode differ a lot
    x = torch.randn(4, 1, 6, 6)
    reloaded = torch.export.load(str(serve.export_program(model, tmp_path / "m.pt2", x))).module()
    torch.testing.assert_close(reloaded(x), model.eval()(x).detach())


@pytest.mark.parametrize("export", [serve.export_onnx, serve.export_program])
def test_exports_name_a_bad_example_input(tmp_path, export):
    with pytest.raises(TypeError, match="example_input must be a tensor"):
        export(tiny_model(), tmp_path / "m", np.zeros((1, 1, 28, 28), dtype=np.float32))


def test_timing_percentiles_and_throughput_on_known_latencies():
    timing = serve.Timing("x", 4, tuple(float(v) for v in range(1, 22)))  # 1, 2, ..., 21 ms
    assert timing.p50_ms == 11.0 and timing.p95_ms == 20.0  # 21 values: p95 is the 20th
    assert timing.images_per_s == pytest.approx(4 * 21 / 0.231)
    assert timing.row() == {"runtime": "x", "batch": 4, "p50 (ms)": 11.0, "p95 (ms)": 20.0,
                            "images/s": timing.images_per_s}


def test_benchmark_times_each_runner_and_batch_size_on_the_requested_batches():
    seen: dict[str, list[tuple[int, ...]]] = {"a": [], "b": []}

    def runner(name):
        def predict(batch):
            seen[name].append(tuple(batch.shape))
            time.sleep(0.002 if name == "a" else 0.0)
        return predict

    images = torch.rand(10, 1, 4, 4)
    timings = serve.benchmark({"a": runner("a"), "b": runner("b")}, images, batch_sizes=(1, 4), requests=6,
                              warmup=2, rounds=3)
    assert [(t.runtime, t.batch_size) for t in timings] == [("a", 1), ("a", 4), ("b", 1), ("b", 4)]
    assert all(len(t.latencies_ms) == 6 for t in timings)
    assert sorted(seen["a"]) == [(1, 1, 4, 4)] * 8 + [(4, 1, 4, 4)] * 8  # 2 warm-up + 6 timed calls each
    assert min(timings[0].latencies_ms) >= 2.0  # the sleep is measured, in ms
    for t in timings:
        assert t.p50_ms <= t.p95_ms <= max(t.latencies_ms)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(requests=10, rounds=3), ValueError, "multiple of rounds"),
    (dict(batch_sizes=(1, 64)), ValueError, "a batch of 64 needs at least"),
    (dict(batch_sizes=(0,)), ValueError, "batch size must be a positive int"),
    (dict(images=torch.rand(8, 4, 4)), ValueError, "images must be 4-D"),
    (dict(runners={}), TypeError, "runners must map names"),
])
def test_benchmark_names_bad_arguments(kwargs, error, words):
    arguments = dict(runners={"a": lambda b: b}, images=torch.rand(8, 1, 4, 4), batch_sizes=(1, 4), requests=6,
                     rounds=3)
    arguments.update(kwargs)
    with pytest.raises(error, match=words):
        serve.benchmark(**arguments)


def test_onnx_and_torch_runners_agree(tmp_path):
    model = tiny_model()
    x = torch.randn(3, 1, 28, 28)
    path = serve.export_onnx(model, tmp_path / "m.onnx", x)
    np.testing.assert_allclose(serve.onnx_runner(path)(x), serve.torch_runner(model)(x).numpy(), atol=1e-4)


# ----------------------------------------------------------------------------------------------
# the server helper (a real uvicorn process) and the page in headless Chromium


def fashion_test_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from companion import data

    return data.tensors(data.fashion_mnist(train=False, download=False), limit=n, seed=1)


@pytest.fixture(scope="module")
def live_server():
    with serve.running_server("fmnist_cnn") as server:
        yield server
    # stopped when the block ended: the process has exited, its log is gone, the port is closed
    assert server.process.returncode is not None and not server.log_path.exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(
            ("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=2):
        pass


def as_png(image: torch.Tensor) -> bytes:
    return png((image[0] * 255).round().to(torch.uint8).numpy())  # (28, 28) uint8


def test_running_server_answers_as_the_model_in_this_process(live_server):
    from companion import zoo

    images, _ = fashion_test_images(8)
    model = zoo.load("fmnist_cnn")
    with torch.inference_mode():
        expected = torch.softmax(model(images), dim=1)  # (8, 10)
    for image, probabilities in zip(images, expected):
        status, answer = serve.post_file(f"{live_server.url}/predict", as_png(image))
        assert status == 200 and answer["index"] == int(probabilities.argmax())
        np.testing.assert_allclose(list(answer["probabilities"].values()), probabilities.numpy(), atol=1e-5)
    status, answer = serve.post_file(f"{live_server.url}/predict", b"hello", filename="notes.txt",
                                     content_type="text/plain")
    assert status == 415 and "not an image" in answer["detail"]
    status, answer = serve.post_file(f"{live_server.url}/predict", as_png(images[0]), field="image")
    assert status == 422 and answer["detail"][0]["loc"] == ["body", "file"]
    assert '"POST /predict HTTP/1.1" 200' in live_server.log()


def test_running_server_reports_a_server_that_cannot_start():
    with pytest.raises(RuntimeError, match="(?s)the server exited with code 2.*no zoo checkpoint called 'no_such"):
        with serve.running_server("no_such_model"):
            pass


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        why = ("headless Chromium is missing: run 'make test' as root (it installs Debian's chromium and "
               "chromium-driver) or 'sudo apt-get install chromium chromium-driver'")
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_shows_the_prediction_of_an_uploaded_image_and_the_error_of_a_text_file(
        live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from companion import zoo
    from companion.data import FASHION_MNIST_CLASSES

    images, _ = fashion_test_images(1)
    with torch.inference_mode():
        label = FASHION_MNIST_CLASSES[int(zoo.load("fmnist_cnn")(images).argmax())]
    picture, text = tmp_path / "garment.png", tmp_path / "notes.txt"
    picture.write_bytes(as_png(images[0]))
    text.write_text("not a picture")
    browser.get(f"{live_server.url}/")
    wait = WebDriverWait(browser, 30)
    browser.find_element(By.ID, "file").send_keys(str(picture))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "label").text)
    assert browser.find_element(By.ID, "label").text == f"Prediction: {label}"
    rows = browser.find_elements(By.CSS_SELECTOR, "#probabilities tr")
    assert len(rows) == 10 and rows[0].text.startswith(label)  # sorted, the most probable first
    assert browser.find_element(By.ID, "error").text == ""
    browser.find_element(By.ID, "file").send_keys(str(text))
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "error").text)
    assert "not an image" in browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "label").text == ""  # the old prediction is gone
