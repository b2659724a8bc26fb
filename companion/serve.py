"""Serving a model: an HTTP prediction API (FastAPI) and an ONNX export checked with onnxruntime.

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
of the course's zoo, served by uvicorn).

Introduced in chapter 27, *Serving a model*.
"""

# No "from __future__ import annotations": FastAPI reads the route's annotations (UploadFile) at
# run time, and the fastapi import stays inside create_app so that the module loads without it.
import argparse
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""The largest accepted upload: 10 MiB."""

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
  error.textContent = "";
  if (!file) { error.textContent = "Choose an image first."; return; }
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file); preview.hidden = false;
  const body = new FormData(); body.append("file", file);
  const response = await fetch("predict", {method: "POST", body});
  const answer = await response.json();
  if (!response.ok) { error.textContent = answer.detail; return; }
  document.getElementById("label").textContent = "Prediction: " + answer.label;
  const rows = Object.entries(answer.probabilities).sort((a, b) => b[1] - a[1]);
  document.getElementById("probabilities").innerHTML = rows.map(([name, p]) =>
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
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
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
    # torch.export traces the model; the batch dimension is left symbolic (any size at run time).
    torch.onnx.export(model, (example_input,), str(path), input_names=["input"], output_names=["output"],
                      dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(example_input).numpy()
    got = session.run(None, {"input": example_input.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    return path


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
    model = zoo.load(args.model)
    names = [FASHION_MNIST_CLASSES[c] for c in zoo.get(args.model).classes]  # the classes it was trained on
    uvicorn.run(create_app(model, names), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
