"""companion.faces: the same boxes as calling OpenCV's cascades directly, on real photographs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from companion import faces


def rows(boxes: np.ndarray) -> list[list[int]]:
    """Boxes as a sorted list: OpenCV's threads may return the same boxes in another order."""
    return sorted(boxes.tolist())


def opencv(name: str, gray: np.ndarray, **kwargs) -> np.ndarray:
    found = cv2.CascadeClassifier(cv2.data.haarcascades + name).detectMultiScale(gray, **kwargs)
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)


@pytest.mark.parametrize("detect,name", [(faces.detect_faces, faces.FACE_CASCADE),
                                         (faces.detect_eyes, faces.EYE_CASCADE),
                                         (faces.detect_smiles, faces.SMILE_CASCADE)])
def test_same_boxes_as_opencv_on_the_astronaut(detect, name):
    rgb = skimage.data.astronaut()  # (512, 512, 3) uint8, a real portrait
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    expected = opencv(name, gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    assert rows(detect(rgb)) == rows(expected) and detect(rgb).dtype == np.int64
    assert rows(detect(gray)) == rows(expected)  # grey in, same boxes
    tuned = opencv(name, gray, scaleFactor=1.3, minNeighbors=2, minSize=(30, 30))
    assert rows(detect(rgb, scale_factor=1.3, min_neighbors=2, min_size=(30, 30))) == rows(tuned)


def test_the_astronauts_face_is_found_where_it_is():
    boxes = faces.detect_faces(skimage.data.astronaut())
    assert boxes.shape == (1, 4)
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 160  # Eileen Collins' face, top middle


def test_nothing_found_is_an_empty_array():
    found = faces.detect_faces(np.full((64, 64), 128, dtype=np.uint8))
    assert found.shape == (0, 4) and found.dtype == np.int64


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="must have dtype uint8"):
        faces.detect_faces(np.zeros((32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB, got shape \(32, 32, 4\)"):
        faces.detect_faces(np.zeros((32, 32, 4), dtype=np.uint8))
    with pytest.raises(TypeError, match="must be a numpy array"):
        faces.detect_faces([[0]])
    with pytest.raises(ValueError, match="scale_factor must be a number > 1"):
        faces.detect_faces(np.zeros((32, 32), dtype=np.uint8), scale_factor=1.0)
