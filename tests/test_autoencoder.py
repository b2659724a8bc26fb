"""companion.autoencoder: the conv autoencoder's shapes, the denoising loss's target, the exact k-NN index
(checked against scikit-learn's NearestNeighbors, ties included), precision@k on hand cases, and the errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from torch import nn

from companion import autoencoder as ae
from companion.upsample import conv_transpose_output_size

# --- the autoencoder --------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, code_size, image_channels, image_size", [
    ((16, 32), 32, 1, 28), ((8,), 10, 1, 28), ((4, 8, 16), 64, 3, 32), ((6, 6), 784, 1, 28)])
def test_autoencoder_shapes_and_every_parameter_gets_a_gradient(channels, code_size, image_channels, image_size):
    torch.manual_seed(0)
    model = ae.ConvAutoencoder(channels, code_size, image_channels, image_size)
    x = torch.rand(3, image_channels, image_size, image_size)
    code = model.features(x)
    logits = model(x)
    assert code.shape == (3, code_size)
    assert logits.shape == x.shape
    assert model.decode(code).shape == x.shape
    F.binary_cross_entropy_with_logits(logits, x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    reconstruction = model.reconstruct(x)
    assert reconstruction.shape == x.shape and 0 <= reconstruction.min() and reconstruction.max() <= 1
    torch.testing.assert_close(reconstruction, torch.sigmoid(logits.detach()))


def test_the_default_autoencoder_is_the_documented_table_and_its_parameter_count_is_the_hand_count():
    model = ae.ConvAutoencoder()
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == list(ae.ENCODER_CHANNELS) == [16, 32]
    assert all(c.stride == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    encoder = (1 * 16 * 9 + 16) + (16 * 32 * 9 + 32) + (32 * 7 * 7 * 32 + 32)
    decoder = (32 * 32 * 7 * 7 + 32 * 7 * 7) + (32 * 16 * 9 + 16) + (16 * 1 * 9 + 1)
    assert sum(p.numel() for p in model.encoder.parameters()) == encoder
    assert sum(p.numel() for p in model.decoder.parameters()) == decoder


def test_each_transposed_convolution_doubles_the_side_as_chapter_4s_formula_says():
    model = ae.ConvAutoencoder((4, 8, 16), 12, 1, 32)
    x = model.decoder[:3](torch.zeros(2, 12))  # the linear layer, ReLU, unflatten: (2, 16, 4, 4)
    assert x.shape == (2, 16, 4, 4)
    for layer in model.decoder[3:]:
        if isinstance(layer, nn.ConvTranspose2d):
            n = x.shape[-1]
            x = layer(x)
            assert x.shape[-1] == conv_transpose_output_size(n, 3, 2, 1, 1) == 2 * n
    assert x.shape == (2, 1, 32, 32)


def test_autoencoder_errors():
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* len\\(channels\\) = 4"):
        ae.ConvAutoencoder((8, 16), 32, 1, 30)
    with pytest.raises(ValueError, match="channels must be a non-empty sequence"):
        ae.conv_encoder((), 32)
    with pytest.raises(ValueError, match="code_size must be a positive int"):
        ae.conv_decoder((8,), 0)
    model = ae.ConvAutoencoder()
    with pytest.raises(ValueError, match=r"x must be \(N, 1, 28, 28\)"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="x must be 4-D"):
        model(torch.rand(1, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        model.features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"code must be \(N, 32\)"):
        model.decode(torch.rand(2, 16))


# --- corruption, loss, training ---------------------------------------------------------------------


def test_corrupt_masks_the_given_fraction_and_gaussian_noise_stays_in_range():
    x = torch.rand(8, 1, 28, 28) * 0.9 + 0.1  # no zeros of its own
    g = torch.Generator().manual_seed(0)
    masked = ae.corrupt(x, "masking", 0.25, g)
    zeroed = masked == 0
    assert abs(zeroed.double().mean().item() - 0.25) < 0.02
    torch.testing.assert_close(masked[~zeroed], x[~zeroed])  # the rest is untouched
    noisy = ae.corrupt(x, "gaussian", 0.5, g)
    assert noisy.min() >= 0 and noisy.max() <= 1 and (noisy - x).abs().mean() > 0.2
    torch.testing.assert_close(ae.corrupt(x, "gaussian", 0.0), x)
    torch.testing.assert_close(ae.corrupt(x, "masking", 0.0), x)
    again = ae.corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, ae.corrupt(x, "gaussian", 0.5, torch.Generator().manual_seed(1)))


def test_corrupt_errors():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="kind must be 'gaussian' or 'masking'"):
        ae.corrupt(x, "salt")
    with pytest.raises(ValueError, match="in \\[0, 1\\] \\(a fraction\\) for masking"):
        ae.corrupt(x, "masking", 1.5)
    with pytest.raises(ValueError, match="level must be >= 0"):
        ae.corrupt(x, "gaussian", -0.1)


def test_reconstruction_loss_is_the_binary_cross_entropy_written_out_and_refuses_targets_outside_0_1():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 1, 5, 5, dtype=torch.float64)
    p = torch.sigmoid(logits)
    by_hand = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    torch.testing.assert_close(ae.reconstruction_loss(logits, target), by_hand)
    assert torch.autograd.gradcheck(lambda z: ae.reconstruction_loss(z, target), (logits,))
    with pytest.raises(ValueError, match="target must be in \\[0, 1\\].*undo any normalisation"):
        ae.reconstruction_loss(logits, (target - 0.5) / 0.3)
    with pytest.raises(ValueError, match="same shape"):
        ae.reconstruction_loss(logits, target[:1])


class Copier(nn.Module):
    """Returns the logits of its input itself (a perfect copier), plus a parameter the optimiser can step."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x.clamp(1e-4, 1 - 1e-4)) + self.shift


@pytest.mark.parametrize("kind, level", [("gaussian", 0.3), ("masking", 0.5)])
def test_the_denoising_loss_compares_the_reconstruction_of_the_corrupted_batch_with_the_clean_batch(kind, level):
    images = torch.rand(64, 1, 6, 6)
    log = ae.train_autoencoder(Copier(), images, epochs=1, batch_size=16, lr=1e-9, noise=kind, noise_level=level,
                               seed=3, progress=False)
    g = torch.Generator().manual_seed(3)  # the same draws: the shuffle, then the noise of the first batch
    clean = images[torch.randperm(64, generator=g)[:16]]
    noisy = ae.corrupt(clean, kind, level, g)
    expected = ae.reconstruction_loss(Copier()(noisy), clean).item()
    copy_of_noisy = ae.reconstruction_loss(Copier()(noisy), noisy).item()  # the bug: the noisy target
    assert log.loss[0] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - copy_of_noisy) > 0.05  # a copier cannot denoise, so the two differ


def test_training_lowers_the_reconstruction_loss():
    torch.manual_seed(0)
    stripes = torch.zeros(512, 1, 8, 8)
    for i in range(512):
        stripes[i, 0, :, i % 8] = 1.0  # eight different images, repeated
    model = ae.ConvAutoencoder((8,), 8, 1, 8)
    log = ae.train_autoencoder(model, stripes, epochs=6, batch_size=32, lr=1e-2, seed=0, progress=False)
    assert len(log.loss) == 6 * 16 and log.seconds > 0
    assert sum(log.loss[-5:]) / 5 < 0.5 * log.loss[0]
    assert not model.training


def test_train_autoencoder_errors():
    model, x = ae.ConvAutoencoder((4,), 4, 1, 4), torch.rand(8, 1, 4, 4)
    with pytest.raises(ValueError, match="batch_size must be in \\[1, len\\(images\\) = 8\\]"):
        ae.train_autoencoder(model, x, batch_size=9, progress=False)
    with pytest.raises(ValueError, match="kind must be"):
        ae.train_autoencoder(model, x, batch_size=4, noise="blur", progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ae.train_autoencoder(lambda t: t, x, progress=False)


def test_encode_is_the_encoder_in_eval_mode_batch_by_batch():
    torch.manual_seed(0)
    model = ae.ConvAutoencoder()
    model.train()
    x = torch.rand(10, 1, 28, 28)
    codes = ae.encode(model, x, batch_size=3)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(codes, model.features(x))
    model.train()
    ae.encode(model, x)
    assert model.training  # restored


# --- the index, against scikit-learn ----------------------------------------------------------------


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("n, q, d, k", [(200, 50, 7, 5), (31, 9, 2, 31), (500, 3, 64, 12)])
def test_search_equals_scikit_learns_nearest_neighbors_on_random_inputs(metric, n, q, d, k):
    torch.manual_seed(n + d)
    database = torch.randn(n, d, dtype=torch.float64)
    queries = torch.randn(q, d, dtype=torch.float64)
    index = ae.EmbeddingIndex(database, metric)
    distances, indices = index.search(queries, k, batch_size=4)  # several batches
    nn_ = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(database.numpy())
    theirs_d, theirs_i = nn_.kneighbors(queries.numpy())
    torch.testing.assert_close(distances, torch.from_numpy(theirs_d), rtol=1e-9, atol=1e-9)
    assert torch.equal(indices, torch.from_numpy(theirs_i))
    torch.testing.assert_close(index.distances(queries).gather(1, indices), distances)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_leaving_each_query_out_equals_scikit_learns_kneighbors_of_the_training_set(metric):
    torch.manual_seed(1)
    database = torch.randn(120, 5, dtype=torch.float64)
    index = ae.EmbeddingIndex(database, metric)
    distances, indices = index.search(database, 6, exclude=torch.arange(120), batch_size=50)
    nn_ = NearestNeighbors(n_neighbors=6, algorithm="brute", metric=metric).fit(database.numpy())
    theirs_d, theirs_i = nn_.kneighbors()  # X=None: each point is not its own neighbour
    assert not (indices == torch.arange(120)[:, None]).any()
    assert torch.equal(indices, torch.from_numpy(theirs_i))
    torch.testing.assert_close(distances, torch.from_numpy(theirs_d), rtol=1e-9, atol=1e-9)
    # without exclude, every point finds itself first, at distance 0
    _, with_self = index.search(database, 1)
    assert torch.equal(with_self[:, 0], torch.arange(120))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ties_same_distances_as_scikit_learn_same_neighbours_where_defined_and_in_order_of_index(metric):
    # points of a small integer grid, many of them repeated: exact ties in float64
    g = torch.Generator().manual_seed(0)
    database = torch.randint(-2, 3, (300, 3), generator=g).double()
    queries = torch.randint(-2, 3, (40, 3), generator=g).double()
    if metric == "cosine":  # no zero rows (their cosine distance is a convention)
        database, queries = database[database.abs().sum(1) > 0], queries[queries.abs().sum(1) > 0]
    k = 10
    distances, indices = ae.EmbeddingIndex(database, metric).search(queries, k, batch_size=16)
    nn_ = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric=metric).fit(database.numpy())
    theirs_d, theirs_i = (torch.from_numpy(a) for a in nn_.kneighbors(queries.numpy()))
    assert (distances[:, 1:] == distances[:, :-1]).any()  # there are ties to test
    torch.testing.assert_close(distances, theirs_d[:, :k], rtol=0, atol=1e-12)
    every = ae.EmbeddingIndex(database, metric).distances(queries)  # (Q, N)
    for i in range(len(queries)):
        # the set of the k nearest is defined where the k-th and (k+1)-th distances differ
        if theirs_d[i, k - 1] < theirs_d[i, k] - 1e-12:
            assert set(indices[i].tolist()) == set(theirs_i[i, :k].tolist())
        # each result is at the distance reported, and equal distances (bit for bit: a tie in
        # floating point) come in order of index
        assert torch.equal(every[i, indices[i]], distances[i])
        for a in range(k - 1):
            if distances[i, a] == distances[i, a + 1]:
                assert indices[i, a] < indices[i, a + 1]
        # nothing left out is nearer than the last result
        outside = torch.ones(len(database), dtype=torch.bool)
        outside[indices[i]] = False
        assert (every[i, outside] >= distances[i, -1] - 1e-12).all()
        # among the points tied with the last result, the lowest indices were taken
        tied = torch.nonzero(every[i] == distances[i, -1])[:, 0]
        taken = [j for j in indices[i].tolist() if j in set(tied.tolist())]
        assert taken == tied.tolist()[:len(taken)]


@pytest.mark.parametrize("k", [1, 3, 7, 40])
def test_the_k_smallest_equal_a_stable_sort_even_with_many_ties(k):
    g = torch.Generator().manual_seed(k)
    d = torch.randint(0, 4, (60, 40), generator=g).double()  # four values: ties everywhere
    values, indices = ae._k_smallest(d, k)
    sorted_values, order = torch.sort(d, dim=1, stable=True)
    assert torch.equal(values, sorted_values[:, :k]) and torch.equal(indices, order[:, :k])


def test_float32_index_keeps_its_dtype_and_agrees_with_float64():
    torch.manual_seed(2)
    database, queries = torch.rand(300, 16), torch.rand(20, 16)
    d32, i32 = ae.EmbeddingIndex(database).search(queries, 5)
    d64, i64 = ae.EmbeddingIndex(database.double()).search(queries.double(), 5)
    assert d32.dtype == torch.float32 and i32.dtype == torch.int64
    torch.testing.assert_close(d32.double(), d64, rtol=1e-4, atol=1e-5)
    assert (i32 == i64).float().mean() > 0.95  # float32 rounding may swap near-ties only


def test_cosine_distance_of_a_zero_row_is_one_as_in_scikit_learn():
    database = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    distances = ae.EmbeddingIndex(database, "cosine").distances(torch.tensor([[3.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(distances, torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64))


def test_index_errors():
    index = ae.EmbeddingIndex(torch.rand(5, 3))
    with pytest.raises(ValueError, match="metric must be one of \\('euclidean', 'cosine'\\)"):
        ae.EmbeddingIndex(torch.rand(5, 3), "manhattan")
    with pytest.raises(ValueError, match="embeddings must be 2-D"):
        ae.EmbeddingIndex(torch.rand(5))
    with pytest.raises(ValueError, match="embeddings is empty"):
        ae.EmbeddingIndex(torch.rand(0, 3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        ae.EmbeddingIndex(torch.tensor([[math.nan, 0.0]]))
    with pytest.raises(ValueError, match="queries must have D = 3 columns"):
        index.search(torch.rand(2, 4), 1)
    with pytest.raises(ValueError, match="k = 6 is more than the 5 database rows"):
        index.search(torch.rand(2, 3), 6)
    with pytest.raises(ValueError, match="k = 5 is more than the 4 database rows"):
        index.search(torch.rand(2, 3), 5, exclude=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="exclude must be an int64 tensor \\(Q,\\) = \\(2,\\)"):
        index.search(torch.rand(2, 3), 1, exclude=torch.tensor([0]))
    with pytest.raises(ValueError, match="exclude holds database indices in \\[0, 4\\]"):
        index.search(torch.rand(2, 3), 1, exclude=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="k must be a positive int"):
        index.search(torch.rand(2, 3), 0)


# --- precision@k --------------------------------------------------------------------------------------


def test_precision_at_k_on_hand_cases():
    retrieved = torch.tensor([[1, 1, 0, 1],
                              [2, 0, 0, 0]])
    query = torch.tensor([1, 0])
    assert ae.precision_at_k(retrieved, query, 1) == pytest.approx((1 + 0) / 2)
    assert ae.precision_at_k(retrieved, query, 2) == pytest.approx((1 + 1 / 2) / 2)
    assert ae.precision_at_k(retrieved, query, 3) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert ae.precision_at_k(retrieved, query) == pytest.approx((3 / 4 + 3 / 4) / 2)
    assert ae.precision_at_k(torch.tensor([[5, 5]]), torch.tensor([5])) == 1.0
    assert ae.precision_at_k(torch.tensor([[4, 3]]), torch.tensor([5])) == 0.0


def test_retrieval_precision_leaves_the_query_out_and_equals_precision_of_the_search():
    # two tight clusters: with itself left out, every point's neighbours are its cluster's
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    labels = torch.tensor([0, 0, 1, 1, 1, 0])  # one wrong label per cluster
    index = ae.EmbeddingIndex(points)
    left_out = ae.retrieval_precision(index, labels, points, labels, (1, 2), exclude=torch.arange(6))
    _, indices = index.search(points, 2, exclude=torch.arange(6))
    assert left_out[2] == pytest.approx(ae.precision_at_k(labels[indices], labels, 2)) == pytest.approx(1 / 3)
    counted = ae.retrieval_precision(index, labels, points, labels, (1, 2))  # the query found itself
    assert counted[1] == 1.0 and counted[2] > left_out[2]


def test_precision_at_k_errors():
    with pytest.raises(ValueError, match="k = 3 is more than the 2 results per query"):
        ae.precision_at_k(torch.zeros(4, 2), torch.zeros(4), 3)
    with pytest.raises(ValueError, match="must have the same Q"):
        ae.precision_at_k(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="retrieved_labels must be 2-D"):
        ae.precision_at_k(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="no queries"):
        ae.precision_at_k(torch.zeros(0, 2), torch.zeros(0))
    with pytest.raises(ValueError, match="labels must have one entry per database row \\(5\\)"):
        ae.retrieval_precision(ae.EmbeddingIndex(torch.rand(5, 2)), torch.zeros(4), torch.rand(1, 2),
                               torch.zeros(1), (1,))
