"""companion.viola_jones: integral images as cv2.integral, Haar features as direct pixel sums, AdaBoost's
stump as a brute-force search, and OpenCV's own cascades giving the same boxes as detectMultiScale."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data

from companion import viola_jones as vj


def astronaut_gray() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)  # (512, 512) uint8, a real portrait


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (31, 5), (64, 64)])
def test_integral_image_equals_cv2_integral(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    ii = vj.integral_image(image)
    assert ii.shape == (shape[0] + 1, shape[1] + 1) and ii.dtype == np.int64
    np.testing.assert_array_equal(ii, cv2.integral(image))  # a zero first row and column
    _, squared = cv2.integral2(image, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    np.testing.assert_array_equal(vj.integral_image(image, squared=True), squared)
    floats = rng.random(shape)
    np.testing.assert_allclose(vj.integral_image(floats), cv2.integral(floats, sdepth=cv2.CV_64F), rtol=1e-12)


def test_integral_image_of_a_whole_photo_does_not_overflow():
    gray = astronaut_gray()
    np.testing.assert_array_equal(vj.integral_image(gray, squared=True)[-1, -1],
                                  (gray.astype(np.int64) ** 2).sum())


def test_rect_sum_equals_the_direct_sum_also_at_the_edges():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    ii = vj.integral_image(image)
    x, y = rng.integers(0, 25, 200), rng.integers(0, 15, 200)
    w, h = rng.integers(1, 30 - x + 1), rng.integers(1, 20 - y + 1)
    direct = [image[b:b + d, a:a + c].astype(np.int64).sum() for a, b, c, d in zip(x, y, w, h)]
    np.testing.assert_array_equal(vj.rect_sum(ii, x, y, w, h), direct)
    assert vj.rect_sum(ii, 0, 0, 30, 20) == image.astype(np.int64).sum()  # the whole image, edges included
    assert vj.rect_sum(ii, 29, 19, 1, 1) == image[19, 29]  # the last pixel


def test_rect_sum_outside_the_image_is_refused():
    ii = vj.integral_image(np.zeros((4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="leaves the image of 5x4 pixels"):
        vj.rect_sum(ii, 1, 0, 5, 1)


@pytest.mark.parametrize("kind", sorted(vj.HAAR_KINDS))
def test_haar_features_equal_direct_pixel_sums(kind):
    rng = np.random.default_rng(len(kind))
    images = rng.integers(0, 256, (3, 24, 24), dtype=np.uint8)
    iis = np.stack([vj.integral_image(im) for im in images])  # (3, 25, 25)
    features = vj.all_haar_features(24)
    for i in rng.choice(len(features), 300, replace=False):
        k, x, y, w, h = features[i]
        if k != kind:
            continue
        np.testing.assert_array_equal(vj.haar_feature(iis, k, x, y, w, h),
                                      vj.haar_feature_direct(images, k, x, y, w, h))
        assert vj.haar_feature(iis[0], k, x, y, w, h) == vj.haar_feature_direct(images[0], k, x, y, w, h)
    flat = np.full((24, 24), 77, dtype=np.uint8)  # every kind is zero on a flat patch
    assert vj.haar_feature(vj.integral_image(flat), kind, 0, 0, 2, 2) == 0


def test_cell_sums_uses_only_the_shared_corners():
    class Counting(np.ndarray):
        lookups = 0

        def __getitem__(self, index):
            out = np.asarray(super().__getitem__(index))  # what comes out is a plain array
            Counting.lookups += out.size
            return out

    ii = vj.integral_image(np.arange(36, dtype=np.uint8).reshape(6, 6)).view(Counting)
    for rows, cols, expected in [(1, 2, 6), (1, 3, 8), (2, 2, 9)]:
        Counting.lookups = 0
        sums = vj.cell_sums(ii, 0, 0, 2, 3, cols, rows)
        assert Counting.lookups == expected and sums.shape == (rows, cols)


def test_feature_count_matches_the_enumeration_and_the_papers_160000():
    counts = vj.count_haar_features(24)
    assert sum(counts.values()) == len(vj.all_haar_features(24)) == 162_336  # "over 160,000" (2004, sec. 2)
    assert counts["edge_x"] == counts["edge_y"] == 43_200 and counts["four"] == 20_736
    assert sum(vj.count_haar_features(8).values()) == len(vj.all_haar_features(8))


def brute_force_stump(values, labels, weights):
    best = math.inf
    for f in range(values.shape[1]):
        for t in np.unique(np.concatenate([values[:, f] - 0.5, values[:, f] + 0.5])):
            for polarity in (1, -1):
                predicted = polarity * values[:, f] < polarity * t
                best = min(best, weights[predicted != labels.astype(bool)].sum())
    return best


def test_best_stump_is_the_brute_force_best():
    rng = np.random.default_rng(1)
    for trial in range(5):
        values = rng.integers(-6, 7, (30, 4)).astype(np.float64)  # ties included
        labels = rng.integers(0, 2, 30)
        weights = rng.random(30)
        weights /= weights.sum()
        stump, error = vj.best_stump(values, labels, weights)
        assert error == pytest.approx(brute_force_stump(values, labels, weights), abs=1e-12)
        assert weights[stump.predict(values) != labels].sum() == pytest.approx(error, abs=1e-12)


def test_adaboost_follows_the_papers_weights_and_votes():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(200, 3))
    labels = ((values[:, 0] > 0) & (values[:, 1] > 0)).astype(np.int64)  # no single stump separates them
    stumps = vj.adaboost(values, labels, rounds=12)
    first_error = min(np.mean(s.predict(values) != labels) for s in stumps[:1])
    assert first_error > 0.05
    accuracy = np.mean((vj.boosted_score(stumps, values) >= 0.5) == labels)
    assert accuracy > 0.97
    # round 1 by hand: weights 1/(2m), 1/(2l); alpha = log((1 - e) / e)
    weights = np.where(labels == 1, 1 / (2 * labels.sum()), 1 / (2 * (labels == 0).sum()))
    stump, error = vj.best_stump(values, labels, weights / weights.sum())
    assert (stumps[0].feature, stumps[0].threshold) == (stump.feature, stump.threshold)
    assert stumps[0].alpha == pytest.approx(math.log((1 - error) / error))
    with pytest.raises(ValueError, match="both present"):
        vj.adaboost(values, np.ones(200, dtype=np.int64), rounds=1)


def opencv_raw(name, gray, scale_factor):
    found = cv2.CascadeClassifier(cv2.data.haarcascades + name).detectMultiScale(
        gray, scaleFactor=scale_factor, minNeighbors=0)  # every window the cascade accepts
    return sorted(map(tuple, np.asarray(found, dtype=np.int64).reshape(-1, 4).tolist()))


@pytest.mark.parametrize("name, size, scale_factor", [
    ("haarcascade_frontalface_default.xml", 256, 1.1),  # shrunk with INTER_LINEAR instead, 2 boxes go missing
    ("haarcascade_frontalface_default.xml", 200, 1.2),
    ("haarcascade_eye.xml", 160, 1.15),
])
def test_the_cascade_from_scratch_finds_the_same_boxes_as_opencv(name, size, scale_factor):
    gray = cv2.resize(astronaut_gray(), (size, size), interpolation=cv2.INTER_AREA)
    cascade = vj.load_cascade(name)
    boxes, runs = vj.detect_multiscale(cascade, gray, scale_factor)
    expected = opencv_raw(name, gray, scale_factor)
    assert len(expected) > 0 and sorted(map(tuple, boxes.tolist())) == expected
    for run in runs:  # each stage keeps a subset of the windows before it
        assert np.all(np.diff(run.survivors) <= 0) and run.survivors[0] <= run.windows


def test_the_cascade_of_opencv_has_its_published_size_and_stops_most_windows_early():
    cascade = vj.load_cascade("haarcascade_frontalface_default.xml")
    assert cascade.window == (24, 24) and len(cascade.stages) == 25 and cascade.num_features == 2913
    assert [len(s.features) for s in cascade.stages[:3]] == [9, 16, 27]
    gray = cv2.resize(astronaut_gray(), (128, 128), interpolation=cv2.INTER_AREA)
    run = vj.run_cascade(cascade, gray, step=1, skip=False)
    stages = [len(s.features) for s in cascade.stages]
    # without the skip, the cost is exactly the survivors before each stage times its stumps
    assert run.stumps_evaluated == sum(n * k for n, k in zip(run.survivors[:-1], stages))
    assert run.stumps_evaluated < 0.05 * run.windows * cascade.num_features
    skipped = vj.run_cascade(cascade, gray, step=1)
    assert skipped.stumps_evaluated < run.stumps_evaluated and set(zip(skipped.x, skipped.y)) <= set(zip(run.x, run.y))


def test_window_sizes_are_the_sizes_opencv_returns():
    gray = astronaut_gray()
    sizes = vj.window_sizes(24, 512, 1.1)
    assert sizes[:4] == [24, 26, 29, 32] and len(sizes) == math.floor(math.log(512 / 24) / math.log(1.1)) + 1
    returned = {w for _, _, w, _ in opencv_raw("haarcascade_frontalface_default.xml", gray, 1.1)}
    assert returned <= set(sizes) and len(returned) > 3


def test_load_cascade_names_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cascade file nothing.xml"):
        vj.load_cascade("nothing.xml")
    tilted = tmp_path / "tilted.xml"
    tilted.write_text("<opencv_storage><cascade><featureType>HAAR</featureType><width>24</width>"
                      "<height>24</height><stages/><features><_><rects><_>0 0 2 2 -1.</_></rects>"
                      "<tilted>1</tilted></_></features></cascade></opencv_storage>")
    with pytest.raises(ValueError, match="tilted"):
        vj.load_cascade(tilted)


def test_bad_images_are_named():
    with pytest.raises(ValueError, match="2-D grey image"):
        vj.integral_image(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        vj.integral_image([[1, 2]])
    with pytest.raises(ValueError, match="kind must be one of"):
        vj.haar_feature(vj.integral_image(np.zeros((4, 4))), "diagonal", 0, 0, 1, 1)
