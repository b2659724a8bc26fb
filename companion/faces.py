"""Face detection with OpenCV's Haar cascades (Viola and Jones, 2001): faces, eyes and smiles.

Viola and Jones, 2001, *Rapid Object Detection using a Boosted Cascade of Simple Features*,
https://doi.org/10.1109/CVPR.2001.990517. A cascade slides a 24x24 window over the image at
several scales; each stage is a boosted set of Haar-like features (differences of rectangle sums,
each computed in four look-ups of the integral image) and rejects most windows early, which is why
it is fast. OpenCV ships trained cascades (``cv2.data.haarcascades``), so the detectors below need
no download.

These are thin, checked wrappers around ``cv2.CascadeClassifier.detectMultiScale``: the same
defaults as the 10-line detector of the course's reading list, RGB or grey ``uint8`` input, and
an ``(N, 4)`` array of ``(x, y, w, h)`` boxes, empty ``(0, 4)`` when nothing is found.

Introduced in chapter 18, *Face detection*.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
SMILE_CASCADE = "haarcascade_smile.xml"


def _cv2():
    try:
        import cv2
    except ImportError as error:  # the companion's learners' install does not need OpenCV elsewhere
        raise ImportError('face detection needs OpenCV: pip install "opencv-python-headless<5" '
                          "(version 5 ships no cascades)") from error
    return cv2


@lru_cache(maxsize=None)
def cascade(name: str):
    """The ``cv2.CascadeClassifier`` of one of OpenCV's bundled cascade files (loaded once)."""
    cv2 = _cv2()
    path = cv2.data.haarcascades + name
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise FileNotFoundError(f"OpenCV could not load the cascade {path}: is opencv-python-headless "
                                "installed in a version below 5 (which still ships cascades)?")
    return classifier


def to_gray(image: object) -> np.ndarray:
    """A ``(H, W)`` grey ``uint8`` image from a ``(H, W)`` grey or ``(H, W, 3)`` RGB ``uint8`` array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H, W) or (H, W, 3) of uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image must have dtype uint8 (0-255), got {image.dtype}; "
                        "convert with (image * 255).round().astype(np.uint8) if it is in [0, 1]")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return _cv2().cvtColor(np.ascontiguousarray(image), _cv2().COLOR_RGB2GRAY)
    raise ValueError(f"image must be (H, W) grey or (H, W, 3) RGB, got shape {image.shape}")


def _detect(name: str, image: object, scale_factor: float, min_neighbors: int,
            min_size: tuple[int, int]) -> np.ndarray:
    if not isinstance(scale_factor, (int, float)) or scale_factor <= 1:
        raise ValueError(f"scale_factor must be a number > 1 (the step between window scales), got {scale_factor!r}")
    if not isinstance(min_neighbors, int) or min_neighbors < 0:
        raise ValueError(f"min_neighbors must be an int >= 0, got {min_neighbors!r}")
    if len(min_size) != 2 or any(not isinstance(v, int) or v < 1 for v in min_size):
        raise ValueError(f"min_size must be two positive ints (w, h), got {min_size!r}")
    found = cascade(name).detectMultiScale(to_gray(image), scaleFactor=float(scale_factor),
                                           minNeighbors=min_neighbors, minSize=tuple(min_size))
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)  # () when nothing is found -> (0, 4)


def detect_faces(image: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: tuple[int, int] = (24, 24)) -> np.ndarray:
    """Frontal faces found by ``haarcascade_frontalface_default.xml``.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB, ``uint8``.
        scale_factor: how much the window grows between scales (1.1: 10%); smaller finds more
            sizes, slower.
        min_neighbors: how many overlapping raw detections a face needs to be kept; higher means
            fewer false positives and more misses.
        min_size: the smallest face ``(w, h)`` in pixels.

    Returns:
        ndarray[N, 4] (int64): ``(x, y, w, h)`` of each face; shape ``(0, 4)`` when none.
    """
    return _detect(FACE_CASCADE, image, scale_factor, min_neighbors, min_size)


def detect_eyes(image: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 5,
                min_size: tuple[int, int] = (24, 24)) -> np.ndarray:
    """Eyes found by ``haarcascade_eye.xml``; arguments and result as :func:`detect_faces`."""
    return _detect(EYE_CASCADE, image, scale_factor, min_neighbors, min_size)


def detect_smiles(image: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 5,
                  min_size: tuple[int, int] = (24, 24)) -> np.ndarray:
    """Smiles found by ``haarcascade_smile.xml``; arguments and result as :func:`detect_faces`."""
    return _detect(SMILE_CASCADE, image, scale_factor, min_neighbors, min_size)
