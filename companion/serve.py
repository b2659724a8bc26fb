"""Serving a model: an HTTP prediction API (FastAPI, uvicorn), exports (ONNX, torch.export), a benchmark.

The contract of a served classifier is the model *and* its preprocessing: the server must turn an
uploaded file into exactly the tensor the model was trained on (here: greyscale or RGB, resized,
scaled to [0, 1] as ``torchvision.transforms.ToTensor`` does, no normalisation). The app:

* ``GET /health`` -> ``{"status": "ok"}``;
* ``POST /predict`` with a multipart image field ``file`` -> ``{"label", "index", "probabilities"}``
  (the softmax of the model's output, in eval mode);
* ``GET /`` -> a page where a person uploads an image and sees the prediction;
* a bad upload (not an image, empty, over 10 MiB) -> a 4xx JSON error with a ``detail`` message,
  never a 500.

Run it as a real server with ``python -m companion.serve --model fmnist_cnn --port 8000`` (a model
of the course's zoo, served by uvicorn); :func:`running_server` starts that command on a free local
port, waits for ``/health`` and stops it again (the chapter and the tests share it), and
:func:`post_file` sends one multipart upload with the standard library.

Export: :func:`export_onnx` (ONNX, checked with onnxruntime) and :func:`export_program`
(``torch.export``, saved as a ``.pt2`` file), both with a dynamic batch axis. :func:`benchmark`
measures latency (p50, p95 per request) and throughput (images/s) of any predict function, e.g.
eager PyTorch against an onnxruntime session, at batch 1 and batched.

The serving stack is the package's ``serve`` extra (:data:`REQUIREMENTS`, the same as
``pyproject.toml``'s); :func:`missing_requirements` names what a notebook must install.

Tools: FastAPI (https://fastapi.tiangolo.com), uvicorn, ONNX Runtime (https://onnxruntime.ai);
``torch.export`` is built on TorchDynamo (Ansel et al., 2024, https://doi.org/10.1145/3620665.3640366).

Introduced in chapter 27, *Serving a model behind an HTTP API*.
"""

# No "from __future__ import annotations": FastAPI reads the route's annotations (UploadFile) at
# run time, and the fastapi import stays inside create_app so that the module loads without it.
import argparse
import contextlib
import inspect
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from companion import extras

from companion._checks import check_positive_int, check_tensor

#: ``torch.onnx.export(..., dynamo=True)`` (the exporter built on ``torch.export``) from torch 2.6 on;
#: the companion's floor, torch 2.3, has only the TorchScript exporter.
_DYNAMO_ONNX = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 6)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""The largest accepted upload: 10 MiB."""

REQUIREMENTS = extras.EXTRAS["serve"]
"""The ``serve`` extra of ``pyproject.toml``: the module each requirement installs -> the requirement."""


def missing_requirements() -> str:
    """The ``serve`` requirements whose module is not installed, quoted for ``%pip install``.

    ``""`` where everything is present (then a notebook installs nothing), e.g.
    ``'"onnxruntime>=1.17" "onnxscript>=0.2" "numpy==2.0.2"'`` in Colab, which ships FastAPI and
    uvicorn (the installed NumPy pinned: :func:`companion.extras.missing`).
    """
    return extras.missing("serve")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Classifier</title>
<style>body{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}
img{max-width:100%;image-rendering:pixelated;margin-top:1rem}table{border-collapse:collapse}
td{padding:.1rem .6rem}#error{color:#b00}</style></head>
<body><h1>Classifier</h1>
<p>Choose an image; the model's prediction appears below. Classes: __CLASSES__.</p>
<form id="form"><input id="file" name="file" type="file" accept="image/*" aria-label="image to classify">
<button type="submit">Predict</button></form>
<p id="error" role="alert"></p><p id="label" aria-live="polite"></p>
<table id="probabilities" aria-label="class probabilities"></table>
<img id="preview" alt="the uploaded image" hidden>
<script>
const form = document.getElementById("form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("file").files[0];
  const error = document.getElementById("error");
  const label = document.getElementById("label");
  const table = document.getElementById("probabilities");
  error.textContent = ""; label.textContent = ""; table.innerHTML = "";
  if (!file) { error.textContent = "Choose an image first."; return; }
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file); preview.hidden = false;
  const body = new FormData(); body.append("file", file);
  const response = await fetch("predict", {method: "POST", body});
  const answer = await response.json().catch(() => ({detail: response.statusText}));
  if (!response.ok) {
    const detail = answer.detail;
    error.textContent = typeof detail === "string" ? detail : JSON.stringify(detail);
    return;
  }
  label.textContent = "Prediction: " + answer.label;
  const rows = Object.entries(answer.probabilities).sort((a, b) => b[1] - a[1]);
  table.innerHTML = rows.map(([name, p]) =>
    `<tr><td>${name}</td><td>${(100 * p).toFixed(1)}%</td></tr>`).join("");
});
</script></body></html>
"""


def preprocess(data: bytes, image_size: tuple[int, int] = (28, 28), grayscale: bool = True) -> Tensor:
    """Uploaded bytes -> the model's input ``(1, C, H, W)`` in [0, 1].

    Decodes the image with Pillow, converts it to ``L`` (grey) or ``RGB``, resizes it to
    ``image_size = (H, W)`` (bilinear, as ``torchvision.transforms.Resize`` on an image) and scales it
    as ``ToTensor`` does. No normalisation.

    Raises:
        ValueError: the bytes are empty, over :data:`MAX_UPLOAD_BYTES`, or not an image Pillow reads.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("the upload is empty: send an image file in the field 'file'")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the upload is {len(data)} bytes; images up to {MAX_UPLOAD_BYTES} bytes (10 MiB) are accepted")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise ValueError("the upload is not an image Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, Image.DecompressionBombError) as error:  # e.g. a truncated file
        raise ValueError(f"the upload is not an image Pillow can read (PNG, JPEG, ...): {error}") from None
    height, width = image_size
    image = image.convert("L" if grayscale else "RGB").resize((width, height), Image.BILINEAR)  # PIL: (W, H)
    array = np.asarray(image, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
    tensor = torch.from_numpy(array)
    tensor = tensor[None] if grayscale else tensor.permute(2, 0, 1)  # (C, H, W)
    return tensor[None]  # (1, C, H, W)


def create_app(model: nn.Module, class_names: Sequence[str], image_size: tuple[int, int] = (28, 28),
               grayscale: bool = True):
    """A FastAPI app that serves ``model``'s predictions (see the module's docstring for the routes).

    Args:
        model: a classifier ``(N, C, H, W) -> (N, len(class_names))`` logits; put in eval mode.
        class_names: one name per output.
        image_size: ``(H, W)`` the model takes.
        grayscale: one input channel (``L``) if True, else three (``RGB``).
    """
    from fastapi import FastAPI, File, HTTPException, UploadFile
    from fastapi.responses import HTMLResponse

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = [str(n) for n in class_names]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"class_names must be distinct names, one per output, got {class_names!r}")
    if len(image_size) != 2 or any(not isinstance(v, int) or v < 1 for v in image_size):
        raise ValueError(f"image_size must be (H, W), two positive ints, got {image_size!r}")
    model.eval()
    app = FastAPI(title="Classifier", description="Predictions of a course model; POST an image to /predict.")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.replace("__CLASSES__", ", ".join(names))

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)) -> dict:
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        try:
            x = preprocess(data, tuple(image_size), grayscale)
        except ValueError as error:
            status = 413 if len(data) > MAX_UPLOAD_BYTES else 400 if not data else 415
            raise HTTPException(status_code=status, detail=str(error)) from None
        with torch.inference_mode():
            logits = model(x)
        if logits.shape != (1, len(names)):
            raise HTTPException(status_code=500, detail=f"the model returned shape {tuple(logits.shape)} "
                                                        f"for {len(names)} classes")
        probabilities = torch.softmax(logits.float(), dim=1)[0]
        index = int(probabilities.argmax())
        return {"label": names[index], "index": index,
                "probabilities": {name: float(p) for name, p in zip(names, probabilities)}}

    return app


def export_onnx(model: nn.Module, path: str | Path, example_input: Tensor) -> Path:
    """Export ``model`` (in eval mode) to ONNX with a dynamic batch axis, and check it with onnxruntime.

    Args:
        model: the network to export.
        path: where to write the ``.onnx`` file.
        example_input (Tensor[N, ...]): an input of the shape the model takes (any batch size).

    Returns:
        The path written. Raises ``AssertionError`` if onnxruntime's output differs from the
        model's by more than 1e-4 on ``example_input``.
    """
    import onnxruntime

    if not isinstance(example_input, Tensor):
        raise TypeError(f"example_input must be a tensor, got {type(example_input).__name__}")
    path = Path(path)
    model.eval()
    names = {"input_names": ["input"], "output_names": ["output"]}
    if _DYNAMO_ONNX:
        # torch.export traces the model; the batch dimension is left symbolic (any size at run time).
        torch.onnx.export(model, (example_input,), str(path), **names, dynamo=True, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    else:
        # torch 2.3-2.5 (the companion's floor): the TorchScript exporter, with a named batch axis.
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(model, (example_input,), str(path), **names, **legacy,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(example_input).numpy()
    got = session.run(None, {"input": example_input.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    return path


def export_program(model: nn.Module, path: str | Path, example_input: Tensor) -> Path:
    """Export ``model`` (in eval mode) with ``torch.export`` and a dynamic batch axis; save it as ``.pt2``.

    ``torch.export`` traces the model into a graph of ATen operators (an ``ExportedProgram``) that
    runs without the model's Python code; ``torch.export.load(path).module()`` gives it back as a
    callable module.

    Args:
        model: the network to export.
        path: where to write the ``.pt2`` file.
        example_input (Tensor[N, ...]): an input of the shape the model takes (any batch size).

    Returns:
        The path written. Raises ``AssertionError`` if the reloaded program's output differs from
        the model's on ``example_input`` (float32 tolerances).
    """
    if not isinstance(example_input, Tensor):
        raise TypeError(f"example_input must be a tensor, got {type(example_input).__name__}")
    path = Path(path)
    model.eval()
    # torch.export specialises a size of 1 (0/1 specialisation): trace a batch of two then. The
    # program keeps its example, so copy it: a view would save the whole tensor it views.
    example = example_input.expand(2, *example_input.shape[1:]) if len(example_input) == 1 else example_input
    example = example.detach().clone()
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    reloaded = torch.export.load(str(path)).module()
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(example_input), model(example_input))
    return path


def torch_runner(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """A predict function for :func:`benchmark`: the eager model in eval and inference mode."""
    model.eval()

    def predict(batch: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(batch)

    return predict


def onnx_runner(path: str | Path, threads: int | None = None) -> Callable[[Tensor], np.ndarray]:
    """A predict function for :func:`benchmark`: an onnxruntime session of the ONNX file ``path``.

    Args:
        path: an ONNX file with one input named ``input`` (as :func:`export_onnx` writes).
        threads: onnxruntime's intra-op threads; default torch's (``torch.get_num_threads()``), so
            that both runtimes get the same cores.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(batch: Tensor) -> np.ndarray:
        return session.run(None, {"input": batch.numpy()})[0]

    return predict


@dataclass(frozen=True)
class Timing:
    """The measured latencies of one predict function at one batch size.

    Attributes:
        runtime: what ran, e.g. ``"PyTorch (eager)"``.
        batch_size: images per call (one call is one request).
        latencies_ms: the wall time of each timed call, in milliseconds.
    """

    runtime: str
    batch_size: int
    latencies_ms: tuple[float, ...]

    @property
    def p50_ms(self) -> float:
        """The median latency of a request."""
        return float(np.percentile(self.latencies_ms, 50))

    @property
    def p95_ms(self) -> float:
        """The 95th percentile: 95% of the requests were at least this fast (linear interpolation)."""
        return float(np.percentile(self.latencies_ms, 95))

    @property
    def images_per_s(self) -> float:
        """Throughput: images classified per second of the timed calls."""
        return self.batch_size * len(self.latencies_ms) / (sum(self.latencies_ms) / 1000)

    def row(self) -> dict[str, str | int | float]:
        """One row of a results table: runtime, batch, p50 (ms), p95 (ms), images/s."""
        return {"runtime": self.runtime, "batch": self.batch_size, "p50 (ms)": self.p50_ms,
                "p95 (ms)": self.p95_ms, "images/s": self.images_per_s}


def benchmark(runners: dict[str, Callable[[Tensor], object]], images: Tensor, batch_sizes: Sequence[int] = (1, 64),
              requests: int = 60, warmup: int = 3, rounds: int = 3) -> list[Timing]:
    """Time every predict function at every batch size: latency per request and throughput.

    Each request is one call on ``batch_size`` consecutive images of ``images`` (cycling through
    them). The calls are timed with ``time.perf_counter`` in ``rounds`` interleaved rounds (each
    runner and batch size in turn, ``requests / rounds`` calls each, after ``warmup`` untimed
    calls), so that a change of load on a shared machine hits every setting alike.

    Args:
        runners: name -> predict function taking ``Tensor[B, C, H, W]`` (e.g. :func:`torch_runner`,
            :func:`onnx_runner`).
        images (Tensor[N, C, H, W]): the inputs, ``N >= max(batch_sizes)``.
        batch_sizes: images per request.
        requests: timed requests per runner and batch size (a multiple of ``rounds``).
        warmup: untimed calls per runner and batch size, before the first round.
        rounds: how many interleaved rounds the requests are split into.

    Returns:
        One :class:`Timing` per runner and batch size, in the order runners x batch_sizes.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if not runners or not all(callable(r) for r in runners.values()):
        raise TypeError("runners must map names to predict functions, e.g. {'PyTorch': torch_runner(model)}")
    sizes = [check_positive_int(b, "batch size") for b in batch_sizes]
    if max(sizes) > len(images):
        raise ValueError(f"a batch of {max(sizes)} needs at least that many images, got {len(images)}")
    for value, name in ((requests, "requests"), (rounds, "rounds")):
        check_positive_int(value, name)
    if requests % rounds:
        raise ValueError(f"requests ({requests}) must be a multiple of rounds ({rounds})")
    n = len(images)
    calls: dict[tuple[str, int], int] = {}

    def batch(key: tuple[str, int]) -> Tensor:
        size = key[1]
        start = (calls.get(key, 0) * size) % (n - size + 1)
        calls[key] = calls.get(key, 0) + 1
        return images[start:start + size]  # (B, C, H, W)

    keys = [(name, size) for name in runners for size in sizes]
    for key in keys:
        for _ in range(warmup):
            runners[key[0]](batch(key))
    latencies: dict[tuple[str, int], list[float]] = {key: [] for key in keys}
    for _ in range(rounds):
        for key in keys:
            for _ in range(requests // rounds):
                x = batch(key)
                start = time.perf_counter()
                runners[key[0]](x)
                latencies[key].append(1000 * (time.perf_counter() - start))
    return [Timing(name, size, tuple(latencies[(name, size)])) for name, size in keys]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def post_file(url: str, data: bytes, *, field: str = "file", filename: str = "image.png",
              content_type: str = "image/png", timeout: float = 30.0) -> tuple[int, dict]:
    """POST ``data`` as one multipart form field (as a browser's file upload does); return (status, JSON).

    An HTTP error status (4xx, 5xx) is returned with its JSON body, not raised.
    """
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n")
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


@dataclass(frozen=True)
class Server:
    """A server started by :func:`running_server`.

    Attributes:
        url: its base URL, e.g. ``http://127.0.0.1:51234`` (no trailing slash).
        process: the ``python -m companion.serve`` process.
        log_path: the file its output (uvicorn's log) goes to.
    """

    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """What the server has written so far."""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_server(model: str = "fmnist_cnn", *, timeout: float = 120.0, threads: int = 1) -> Iterator[Server]:
    """Run ``python -m companion.serve --model MODEL --port N`` on a free local port for a ``with`` block.

    Starts the server as a subprocess, waits until ``GET /health`` answers, yields a
    :class:`Server`, and stops the process when the block ends (SIGTERM, which uvicorn handles by
    finishing its requests; SIGKILL after 30 s).

    Args:
        model: a model of the course's zoo (``companion.zoo``).
        timeout: seconds to wait for ``/health``.
        threads: ``OMP_NUM_THREADS`` of the server process.

    Raises:
        RuntimeError: the server exited or did not answer in time; the message holds its log's end.
    """
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+b", prefix="companion-serve-", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, "-m", "companion.serve", "--model", model, "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    server = Server(f"http://127.0.0.1:{port}", process, Path(log.name))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                    if json.load(response) == {"status": "ok"}:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}:\n{server.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /health in {timeout:g} s:\n{server.log()[-2000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        os.unlink(log.name)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m companion.serve --model NAME --port N``: serve a zoo model with uvicorn."""
    import uvicorn

    from companion import zoo
    from companion.data import FASHION_MNIST_CLASSES

    parser = argparse.ArgumentParser(prog="python -m companion.serve", description=main.__doc__)
    parser.add_argument("--model", default="fmnist_cnn", help="a model of the course's zoo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        model = zoo.load(args.model)
    except (KeyError, FileNotFoundError) as error:  # an unknown or untrained checkpoint
        parser.error(str(error).strip('"'))
    names = [FASHION_MNIST_CLASSES[c] for c in zoo.get(args.model).classes]  # the classes it was trained on
    uvicorn.run(create_app(model, names), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
