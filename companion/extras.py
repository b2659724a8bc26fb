"""The companion's optional parts (the extras of ``pyproject.toml``) that some chapters need.

Learners' platforms ship most of them (Colab and Kaggle have Keras 3 and OpenCV; Colab has FastAPI
and uvicorn), so the install cell of every chapter installs none. A chapter that needs one runs
``%pip install -q {extras.missing("keras")}`` after the install cell: it installs, from the package
index and with the companion's version ranges, only what is not there, and nothing where
everything is (as in the course's CI).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

EXTRAS: dict[str, dict[str, str]] = {
    # Keras 3 with the torch backend (chapter 12)
    "keras": {"keras": "keras>=3,<4"},
    # OpenCV with its Haar cascades, which version 5 no longer ships (chapters 18-19)
    "opencv": {"cv2": "opencv-python-headless>=4.9,<5"},
    # the serving stack (chapter 27)
    "serve": {
        "fastapi": "fastapi>=0.100",
        "uvicorn": "uvicorn>=0.23",
        "multipart": "python-multipart>=0.0.9",
        "onnx": "onnx>=1.16",
        "onnxruntime": "onnxruntime>=1.17",
        "onnxscript": "onnxscript>=0.2",
    },
}
"""Extra -> {the module a requirement installs: the requirement}, as in ``pyproject.toml``."""


def missing(extra: str) -> str:
    """The requirements of ``extra`` whose module is not installed, quoted for ``%pip install``.

    ``""`` where all are present, e.g. ``'"onnxruntime>=1.17" "onnxscript>=0.2" "numpy==2.0.2"'`` for
    ``"serve"`` in Colab, which ships FastAPI and uvicorn: the installed NumPy is pinned, so that
    nothing the platform ships is upgraded.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: expected one of {sorted(EXTRAS)}")
    needed = [req for module, req in EXTRAS[extra].items() if importlib.util.find_spec(module) is None]
    if needed and importlib.util.find_spec("numpy") is not None:
        # The installed NumPy stays: pip then picks releases built for it. Without the pin, today's
        # OpenCV or h5py wheels (NumPy 2 only) upgrade NumPy under the running kernel, and every
        # compiled extension imported afterwards fails.
        needed.append(f"numpy=={importlib.metadata.version('numpy')}")
    return " ".join(f'"{req}"' for req in needed)
