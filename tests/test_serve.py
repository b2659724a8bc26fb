"""companion.serve: the HTTP contract (in-process and as a real uvicorn server) and the ONNX export."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

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
def test_export_onnx_matches_the_model_with_any_batch(tmp_path, example_batch):
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
