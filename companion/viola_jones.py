"""Viola-Jones from scratch: the integral image, Haar-like features, boosted stumps and the cascade.

Viola and Jones, 2001, *Rapid Object Detection using a Boosted Cascade of Simple Features*,
https://doi.org/10.1109/CVPR.2001.990517, and the journal version, 2004, *Robust Real-Time Face
Detection*, https://doi.org/10.1023/B:VISI.0000013087.49260.fb. Three ideas make the detector
fast:

* the **integral image** ``ii[y, x]``, the sum of all pixels above and to the left of ``(x, y)``,
  gives the sum of any rectangle in four look-ups (:func:`integral_image`, :func:`rect_sum`);
* **Haar-like features**, differences of the sums of 2, 3 or 4 adjacent rectangles, cost 6, 8 or
  9 look-ups whatever their size (:func:`cell_sums`, :func:`haar_feature`);
* **AdaBoost** picks a few features out of 160,000 and weighs them (:func:`adaboost`), and a
  **cascade** of boosted stages rejects most windows after a handful of features
  (:func:`run_cascade`).

OpenCV's cascades (``cv2.data.haarcascades``) were trained by Lienhart and Maydt, 2002, *An
Extended Set of Haar-like Features for Rapid Object Detection*,
https://doi.org/10.1109/ICIP.2002.1038171, with OpenCV's ``traincascade``. :func:`load_cascade`
reads one, and :func:`detect_multiscale` runs it as OpenCV's ``detectMultiScale`` does, before
the grouping of overlapping boxes (``minNeighbors=0``): the image shrunk by ``scale_factor`` per
scale, a 24x24 window moved 2 pixels at a time (1 pixel once the image is shrunk 2x or more),
each window's feature values divided by its standard deviation (the paper's lighting correction),
and a window rejected by the first stage lets the next position be skipped. It finds the same
boxes as OpenCV (checked in the tests), and counts what the cascade saves.

Introduced in chapter 18, *Face detection*.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Haar-like feature kinds: the sign of each cell of a (rows, cols) grid of equal rectangles.
#: ``edge_x``/``edge_y``: two rectangles side by side / one above the other; ``line_x``/``line_y``:
#: three, the middle one counted twice (zero for a flat patch, as OpenCV writes them: the whole
#: strip with weight -1 and the middle with +3); ``four``: a 2x2 checkerboard.
HAAR_KINDS: dict[str, np.ndarray] = {
    "edge_x": np.array([[1, -1]]),
    "edge_y": np.array([[1], [-1]]),
    "line_x": np.array([[-1, 2, -1]]),
    "line_y": np.array([[-1], [2], [-1]]),
    "four": np.array([[1, -1], [-1, 1]]),
}


def _check_image(image: object, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W), got {type(image).__name__}")
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grey image (H, W), got shape {image.shape}; "
                         "make an RGB image grey first (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"{name} must hold numbers (an integer or float dtype), got {image.dtype}")
    return image


def integral_image(image: np.ndarray, *, squared: bool = False) -> np.ndarray:
    """The integral image, with a zero first row and column, as ``cv2.integral`` makes it.

    ``ii[y, x]`` is the sum of ``image[:y, :x]``: the pixels above and to the left of pixel
    ``(x, y)``, that pixel excluded. The extra zero row and column make every rectangle sum four
    look-ups, also for rectangles that touch the image's top or left edge.

    Args:
        image: ``(H, W)`` grey image, integer or float.
        squared: sum the squared pixels instead (for the variance of a window).

    Returns:
        ndarray[H + 1, W + 1]: ``int64`` for an integer image, ``float64`` for a float one.
    """
    image = _check_image(image)
    dtype = np.int64 if np.issubdtype(image.dtype, np.integer) else np.float64
    values = image.astype(dtype)
    if squared:
        values = values * values
    ii = np.zeros((image.shape[0] + 1, image.shape[1] + 1), dtype=dtype)
    ii[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)  # (H, W) running sums down, then across
    return ii


def rect_sum(ii: np.ndarray, x: np.ndarray | int, y: np.ndarray | int, w: np.ndarray | int,
             h: np.ndarray | int) -> np.ndarray:
    """The sum of ``image[y:y + h, x:x + w]`` from four look-ups of its integral image.

    ``D - B - C + A`` with ``A, B, C, D`` the integral image at the top-left, top-right,
    bottom-left and bottom-right corners (the paper's figure 3). ``x, y, w, h`` broadcast, so one
    call sums many rectangles.

    Args:
        ii: ``(H + 1, W + 1)`` from :func:`integral_image`.
        x, y: the top-left pixel (column, row); w, h: width and height in pixels.

    Returns:
        ndarray of the broadcast shape of ``x, y, w, h``.
    """
    x, y, w, h = (np.asarray(v) for v in (x, y, w, h))
    if np.any(x < 0) or np.any(y < 0) or np.any(x + w > ii.shape[1] - 1) or np.any(y + h > ii.shape[0] - 1):
        raise ValueError(f"a rectangle leaves the image of {ii.shape[1] - 1}x{ii.shape[0] - 1} pixels "
                         "(x + w <= W and y + h <= H; ii is (H + 1, W + 1))")
    return ii[y + h, x + w] - ii[y, x + w] - ii[y + h, x] + ii[y, x]


def cell_sums(ii: np.ndarray, x: int, y: int, w: int, h: int, cols: int, rows: int) -> np.ndarray:
    """The sums of a ``rows x cols`` grid of ``w x h`` rectangles at ``(x, y)``, from shared corners.

    Neighbouring rectangles share corners, so the grid needs ``(rows + 1) * (cols + 1)`` look-ups
    rather than ``4 * rows * cols``: 6 for two rectangles, 8 for three, 9 for four.

    Args:
        ii: ``(..., H + 1, W + 1)``: one integral image, or a batch of them.

    Returns:
        ndarray[..., rows, cols].
    """
    ys = y + h * np.arange(rows + 1)
    xs = x + w * np.arange(cols + 1)
    if min(x, y, w, h) < 0 or ys[-1] > ii.shape[-2] - 1 or xs[-1] > ii.shape[-1] - 1:
        raise ValueError(f"the grid of {cols}x{rows} rectangles of {w}x{h} at ({x}, {y}) leaves the image of "
                         f"{ii.shape[-1] - 1}x{ii.shape[-2] - 1} pixels")
    corners = ii[..., ys[:, None], xs[None, :]]  # (..., rows + 1, cols + 1): the only look-ups
    return (corners[..., 1:, 1:] - corners[..., :-1, 1:]
            - corners[..., 1:, :-1] + corners[..., :-1, :-1])  # (..., rows, cols)


def haar_feature(ii: np.ndarray, kind: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The value of one Haar-like feature: its cells' sums weighted by :data:`HAAR_KINDS`.

    Args:
        ii: ``(..., H + 1, W + 1)`` from :func:`integral_image`: one image, or a stack of them.
        kind: a key of :data:`HAAR_KINDS`.
        x, y: the feature's top-left pixel; w, h: the size of *one* of its rectangles.

    Returns:
        ndarray[...]: the value in each image (a 0-d array for one image).
    """
    if kind not in HAAR_KINDS:
        raise ValueError(f"kind must be one of {sorted(HAAR_KINDS)}, got {kind!r}")
    signs = HAAR_KINDS[kind]
    rows, cols = signs.shape
    return (signs * cell_sums(ii, x, y, w, h, cols, rows)).sum(axis=(-2, -1))


def haar_feature_direct(image: np.ndarray, kind: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The same value summed pixel by pixel, without the integral image (slow; for checks).

    Args:
        image: ``(..., H, W)``.
    """
    signs = HAAR_KINDS[kind]
    total = 0
    for r in range(signs.shape[0]):
        for c in range(signs.shape[1]):
            cell = image[..., y + r * h:y + (r + 1) * h, x + c * w:x + (c + 1) * w]
            total = total + signs[r, c] * cell.astype(np.float64).sum(axis=(-2, -1))
    return np.asarray(total)


def all_haar_features(window: int = 24) -> list[tuple[str, int, int, int, int]]:
    """Every feature ``(kind, x, y, w, h)`` that fits in a ``window x window`` square."""
    found = []
    for kind, signs in HAAR_KINDS.items():
        rows, cols = signs.shape
        for w in range(1, window // cols + 1):
            for h in range(1, window // rows + 1):
                for y in range(window - rows * h + 1):
                    for x in range(window - cols * w + 1):
                        found.append((kind, x, y, w, h))
    return found


def count_haar_features(window: int = 24) -> dict[str, int]:
    """How many features of each kind fit in a ``window x window`` square (every position and size).

    A kind made of ``cols x rows`` rectangles has a width that is a multiple of ``cols`` and a
    height a multiple of ``rows``; one of width ``W`` fits at ``window - W + 1`` columns.
    """
    counts = {}
    for kind, signs in HAAR_KINDS.items():
        rows, cols = signs.shape
        across = sum(window - cols * w + 1 for w in range(1, window // cols + 1))
        down = sum(window - rows * h + 1 for h in range(1, window // rows + 1))
        counts[kind] = across * down
    return counts


# ----------------------------------------------------------------------------------------------
# Boosting: discrete AdaBoost with decision stumps (the 2001 paper's table 1)


@dataclass(frozen=True)
class Stump:
    """A weak classifier on one feature: face when ``polarity * value < polarity * threshold``.

    Attributes:
        feature: the column of the feature matrix it reads.
        threshold: where it splits.
        polarity: +1 (face below the threshold) or -1 (face above).
        alpha: its vote, ``log((1 - error) / error)``.
    """

    feature: int
    threshold: float
    polarity: int
    alpha: float

    def predict(self, values: np.ndarray) -> np.ndarray:
        """1 (face) or 0 for ``values (ndarray[N, F])``: ``ndarray[N]``."""
        return (self.polarity * values[:, self.feature] < self.polarity * self.threshold).astype(np.int64)


def best_stump(values: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> tuple[Stump, float]:
    """The stump with the smallest weighted error over every feature, threshold and polarity.

    For each feature the examples are sorted by value once; the error of a threshold between two
    consecutive values is a running sum of weights (the paper's section 3), so all thresholds of
    all features cost one sort. Thresholds sit halfway between consecutive distinct values.

    Args:
        values: ``(N, F)`` feature values; labels: ``(N,)`` 1 for a face, 0 otherwise;
        weights: ``(N,)`` non-negative, summing to 1.

    Returns:
        The stump (``alpha`` 0, set by :func:`adaboost`) and its weighted error.
    """
    order = np.argsort(values, axis=0, kind="stable")  # (N, F)
    v = np.take_along_axis(values, order, axis=0)  # (N, F) sorted down each column
    face_w = np.take_along_axis((weights * labels)[:, None].repeat(values.shape[1], 1), order, axis=0)
    other_w = np.take_along_axis((weights * (1 - labels))[:, None].repeat(values.shape[1], 1), order, axis=0)
    faces_below = np.vstack([np.zeros((1, v.shape[1])), face_w.cumsum(0)])  # (N + 1, F): first k examples
    others_below = np.vstack([np.zeros((1, v.shape[1])), other_w.cumsum(0)])
    total_faces, total_others = faces_below[-1], others_below[-1]  # (F,)
    # polarity +1 calls the first k examples faces: it misses faces above, accepts others below
    error_pos = (total_faces - faces_below) + others_below  # (N + 1, F)
    error_neg = faces_below + (total_others - others_below)
    # a split between equal values is not a split
    between = np.vstack([np.ones((1, v.shape[1]), bool), v[1:] > v[:-1], np.ones((1, v.shape[1]), bool)])
    error_pos, error_neg = np.where(between, error_pos, np.inf), np.where(between, error_neg, np.inf)
    errors = np.stack([error_pos, error_neg])  # (2, N + 1, F)
    sign, k, feature = np.unravel_index(int(np.argmin(errors)), errors.shape)
    column = v[:, feature]
    low = column[k - 1] if k > 0 else column[0] - 1.0
    high = column[k] if k < len(column) else column[-1] + 1.0
    stump = Stump(feature=int(feature), threshold=float((low + high) / 2), polarity=1 if sign == 0 else -1, alpha=0.0)
    return stump, float(errors[sign, k, feature])


def adaboost(values: np.ndarray, labels: np.ndarray, rounds: int) -> list[Stump]:
    """Discrete AdaBoost with stumps, as in Viola and Jones' table 1.

    Each round picks the stump with the smallest weighted error ``e``, gives it the vote
    ``alpha = log(1 / beta)`` with ``beta = e / (1 - e)``, and multiplies the weights of the
    examples it classifies correctly by ``beta`` (then normalises), so that the next round
    concentrates on the mistakes. Weights start at ``1 / (2m)`` for each of ``m`` non-faces and
    ``1 / (2l)`` for each of ``l`` faces.

    Args:
        values: ``(N, F)`` feature values; labels: ``(N,)`` 1 for a face, 0 otherwise.
        rounds: how many stumps to pick.
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    if values.ndim != 2 or labels.shape != (values.shape[0],):
        raise ValueError(f"values must be (N, F) and labels (N,), got {values.shape} and {labels.shape}")
    if not set(np.unique(labels).tolist()) <= {0, 1} or labels.min() == labels.max():
        raise ValueError("labels must be 0 (not a face) and 1 (a face), with both present")
    faces = labels.sum()
    weights = np.where(labels == 1, 1 / (2 * faces), 1 / (2 * (len(labels) - faces)))
    stumps = []
    for _ in range(rounds):
        weights = weights / weights.sum()
        stump, error = best_stump(values, labels, weights)
        error = min(max(error, 1e-10), 1 - 1e-10)  # a perfect stump would get an infinite vote
        beta = error / (1 - error)
        stumps.append(Stump(stump.feature, stump.threshold, stump.polarity, math.log(1 / beta)))
        correct = stump.predict(values) == labels
        weights = weights * np.where(correct, beta, 1.0)
    return stumps


def boosted_score(stumps: list[Stump], values: np.ndarray) -> np.ndarray:
    """``sum(alpha * h(x)) / sum(alpha)`` for ``values (ndarray[N, F])``: ``ndarray[N]`` in [0, 1].

    The strong classifier of the paper says face when this is at least 1/2; a cascade stage
    lowers that threshold to keep almost every face.
    """
    votes = sum(s.alpha * s.predict(values) for s in stumps)
    return votes / sum(s.alpha for s in stumps)


# ----------------------------------------------------------------------------------------------
# OpenCV's trained cascades, evaluated from scratch


@dataclass(frozen=True)
class Stage:
    """One boosted stage: stumps whose leaf values add up, compared with ``threshold``.

    Attributes:
        threshold: the stage passes a window whose sum is at least this.
        features: ``(K,)`` the feature of each stump.
        thresholds: ``(K,)`` each stump's threshold (on the variance-normalised value).
        leaves: ``(K, 2)`` what a stump adds: column 0 when the value is below its threshold,
            column 1 otherwise.
    """

    threshold: float
    features: np.ndarray
    thresholds: np.ndarray
    leaves: np.ndarray


@dataclass(frozen=True)
class Cascade:
    """A stump-based Haar cascade in OpenCV's format.

    Attributes:
        window: ``(width, height)`` of the detection window (24x24 for faces).
        rects: ``(F, 3, 5)``: each feature's (up to 3) rectangles ``x, y, w, h, weight`` in the
            window; unused rectangles have weight 0.
        stages: the boosted stages, in the order they run.
    """

    window: tuple[int, int]
    rects: np.ndarray
    stages: tuple[Stage, ...]

    @property
    def num_features(self) -> int:
        """How many stumps all stages hold together (a window that passes every stage evaluates them all)."""
        return sum(len(s.features) for s in self.stages)


def load_cascade(name: str | Path) -> Cascade:
    """Read a stump-based Haar cascade XML in OpenCV's format.

    Args:
        name: a file name in ``cv2.data.haarcascades`` (``"haarcascade_frontalface_default.xml"``)
            or a path.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: for a cascade this reader does not handle (LBP features, tilted features,
            trees deeper than a stump, the old format).
    """
    path = Path(name)
    if not path.is_file():
        import cv2

        path = Path(cv2.data.haarcascades) / str(name)
    if not path.is_file():
        raise FileNotFoundError(f"no cascade file {name}: give a path or a file name in cv2.data.haarcascades")
    cascade = ET.parse(path).getroot().find("cascade")
    if cascade is None or cascade.findtext("featureType", "").strip() != "HAAR":
        raise ValueError(f"{path.name} is not a Haar cascade in OpenCV's current format")
    window = (int(cascade.findtext("width")), int(cascade.findtext("height")))
    rects = []
    for feature in cascade.find("features"):
        if feature.findtext("tilted", "0").strip() not in ("0", ""):
            raise ValueError(f"{path.name} has tilted (45-degree) features, which this reader does not handle")
        rows = [[float(v) for v in r.text.split()] for r in feature.find("rects")]
        rects.append(rows + [[0.0] * 5] * (3 - len(rows)))
    stages = []
    for stage in cascade.find("stages"):
        nodes, leaves = [], []
        for weak in stage.find("weakClassifiers"):
            node = weak.findtext("internalNodes").split()
            if len(node) != 4:
                raise ValueError(f"{path.name} has trees deeper than one split; this reader handles stumps")
            nodes.append((int(node[2]), float(node[3])))
            leaves.append([float(v) for v in weak.findtext("leafValues").split()])
        stages.append(Stage(threshold=float(stage.findtext("stageThreshold")),
                            features=np.array([n[0] for n in nodes]), thresholds=np.array([n[1] for n in nodes]),
                            leaves=np.array(leaves)))
    return Cascade(window=window, rects=np.array(rects), stages=tuple(stages))


@dataclass(frozen=True)
class CascadeRun:
    """What one pass of a cascade over one image did.

    Attributes:
        x, y: ``(D,)`` top-left corners of the windows every stage accepted.
        windows: the windows looked at (before any stage).
        survivors: ``(S + 1,)``: windows alive before stage 1 (after the flat-window test), after
            stage 1, ..., after stage S.
        stumps_evaluated: stumps run in all (the cost), to compare with ``windows * num_features``.
    """

    x: np.ndarray
    y: np.ndarray
    windows: int
    survivors: np.ndarray
    stumps_evaluated: int


def run_cascade(cascade: Cascade, gray: np.ndarray, step: int = 2, *, skip: bool = True) -> CascadeRun:
    """Slide the cascade's window over ``gray`` at one scale and run the stages on every window.

    Every window starts alive; a stage sums its stumps' leaf values for the windows still alive
    and keeps those reaching its threshold. Feature values are computed in float32 from the
    integral image and divided by the window's standard deviation times its area (inner
    ``(w - 2) x (h - 2)`` pixels, from a second, squared integral image), as OpenCV does. Windows
    with a standard deviation of 10 grey levels or less are rejected at once (OpenCV's test).

    Args:
        cascade: from :func:`load_cascade`.
        gray: ``(H, W)`` ``uint8`` grey image.
        step: pixels between window positions, down and across.
        skip: after a window the first stage rejects, skip the next position in the row (OpenCV's
            shortcut; not in the paper).
    """
    gray = _check_image(gray, "gray")
    (win_w, win_h), (height, width) = cascade.window, gray.shape
    if height < win_h or width < win_w:
        empty = np.zeros(0, dtype=np.int64)
        return CascadeRun(empty, empty, 0, np.zeros(len(cascade.stages) + 1, dtype=np.int64), 0)
    ii, ii_sq = integral_image(gray), integral_image(gray, squared=True)
    ys, xs = np.meshgrid(np.arange(0, height - win_h + 1, step), np.arange(0, width - win_w + 1, step), indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()  # (P,) every position, row by row
    # lighting correction: the standard deviation of the inner window, times its area
    area = (win_w - 2) * (win_h - 2)
    total = rect_sum(ii, xs + 1, ys + 1, win_w - 2, win_h - 2).astype(np.float64)
    total_sq = rect_sum(ii_sq, xs + 1, ys + 1, win_w - 2, win_h - 2).astype(np.float64)
    norm = area * total_sq - total * total  # area^2 * variance
    flat = ~(norm > 0)
    inv = (1.0 / np.sqrt(np.where(flat, 1.0, norm))).astype(np.float32)  # 1 / (area * std)
    alive = np.flatnonzero(~flat & (area * inv < 0.1))  # std > 10 grey levels
    stride = ii.shape[1]
    flat_ii = ii.ravel()
    survivors, evaluated = [len(alive)], 0
    for number, stage in enumerate(cascade.stages):
        rects = cascade.rects[stage.features]  # (K, 3, 5)
        rx, ry, rw, rh = (rects[..., i].astype(np.int64) for i in range(4))  # (K, 3) each
        weight = rects[..., 4].astype(np.float32)
        base = (ys[alive] * stride + xs[alive])[None, None, :]  # (1, 1, n): each window's top-left
        top_left = (ry * stride + rx)[..., None]  # (K, 3, 1)
        sums = (flat_ii[base + top_left + rh[..., None] * stride + rw[..., None]]
                - flat_ii[base + top_left + rw[..., None]]
                - flat_ii[base + top_left + rh[..., None] * stride]
                + flat_ii[base + top_left])  # (K, 3, n): each rectangle's sum in each window
        value = (weight[..., None] * sums.astype(np.float32)).sum(axis=1) * inv[alive][None, :]  # (K, n)
        leaf = np.where(value < stage.thresholds.astype(np.float32)[:, None],
                        stage.leaves[:, :1].astype(np.float32), stage.leaves[:, 1:].astype(np.float32))
        score = leaf.sum(axis=0, dtype=np.float32)  # (n,)
        evaluated += len(stage.features) * len(alive)
        passed = score >= np.float32(stage.threshold)
        if number == 0 and skip:
            passed, alive = _opencv_skip(alive, passed, xs, ys)
        alive = alive[passed]
        survivors.append(len(alive))
    return CascadeRun(x=xs[alive], y=ys[alive], windows=len(xs), survivors=np.array(survivors),
                      stumps_evaluated=evaluated)


def _opencv_skip(alive: np.ndarray, passed: np.ndarray, xs: np.ndarray,
                 ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's shortcut: a window the first stage rejects makes its row skip the next position.

    Returns the first stage's verdicts and the windows it looked at, without the skipped ones.
    """
    rejected = np.zeros(len(xs), dtype=bool)
    rejected[alive[~passed]] = True  # rejected by stage 1 (flat windows do not skip)
    looked = np.ones(len(xs), dtype=bool)
    for i in range(1, len(xs)):
        if ys[i] == ys[i - 1] and looked[i - 1] and rejected[i - 1]:
            looked[i] = False
    keep = looked[alive]
    return passed[keep], alive[keep]


def detect_multiscale(cascade: Cascade, gray: np.ndarray, scale_factor: float = 1.1,
                      min_size: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, list[CascadeRun]]:
    """Every window the cascade accepts, at every scale: OpenCV's ``detectMultiScale`` before grouping.

    The image is shrunk by ``scale_factor**k`` (``cv2.resize``, ``INTER_LINEAR_EXACT``, as OpenCV) for ``k = 0, 1, ...``
    while the window, ``round(24 * scale_factor**k)`` pixels in the original image, still fits;
    scales whose window is smaller than ``min_size`` are skipped. The step is 2 pixels of the
    shrunk image below a scale of 2 and 1 pixel from 2 on.

    Returns:
        ``(N, 4)`` int64 boxes ``(x, y, w, h)`` in the original image, and one :class:`CascadeRun`
        per scale.
    """
    import cv2

    gray = _check_image(gray, "gray")
    if not isinstance(scale_factor, (int, float)) or scale_factor <= 1:
        raise ValueError(f"scale_factor must be a number > 1, got {scale_factor!r}")
    height, width = gray.shape
    boxes, runs = [], []
    factor = 1.0
    while True:
        win_w, win_h = round(cascade.window[0] * factor), round(cascade.window[1] * factor)
        if win_w > width or win_h > height:
            break
        if win_w >= min_size[0] and win_h >= min_size[1]:
            scale = float(np.float32(factor))  # OpenCV keeps the scales in float32
            size = (round(width / scale), round(height / scale))
            shrunk = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR_EXACT)
            run = run_cascade(cascade, shrunk, step=1 if scale >= 2 else 2)
            runs.append(run)
            for x, y in zip(run.x.tolist(), run.y.tolist()):
                boxes.append((round(x * scale), round(y * scale), win_w, win_h))
        factor *= scale_factor
    return np.array(boxes, dtype=np.int64).reshape(-1, 4), runs


def window_sizes(min_size: int, max_size: int, scale_factor: float, window: int = 24) -> list[int]:
    """The window sides ``detectMultiScale`` tries between ``min_size`` and ``max_size`` (both included).

    ``round(window * scale_factor**k)`` for ``k = 0, 1, ...``, keeping those from ``min_size`` up
    to ``max_size``.
    """
    if scale_factor <= 1:
        raise ValueError(f"scale_factor must be > 1, got {scale_factor!r}")
    sizes, factor = [], 1.0
    while round(window * factor) <= max_size:
        if round(window * factor) >= min_size:
            sizes.append(round(window * factor))
        factor *= scale_factor
    return sizes
