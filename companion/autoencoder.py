"""Autoencoders and image retrieval: conv autoencoders (plain and denoising), an exact k-NN index, precision@k.

* **Autoencoder.** An encoder maps an image to a *code*, a decoder maps the code back to an image,
  and both are trained together to reconstruct their input. When the code is smaller than the
  image (an *undercomplete* autoencoder) the network must keep what matters most about the data
  to reconstruct it well. Hinton & Salakhutdinov, *Reducing the Dimensionality of Data with
  Neural Networks*, Science 2006 (https://www.cs.toronto.edu/~hinton/absps/science.pdf); Goodfellow,
  Bengio & Courville, *Deep Learning*, 2016, chapter 14 (https://www.deeplearningbook.org/contents/autoencoders.html).
* **Denoising autoencoder.** The input is corrupted and the target is the *clean* image, so that
  copying the input is no longer the answer. Vincent, Larochelle, Bengio & Manzagol, *Extracting
  and Composing Robust Features with Denoising Autoencoders*, ICML 2008
  (https://www.cs.toronto.edu/~larocheh/publications/icml-2008-denoising-autoencoders.pdf), whose
  corruption is *masking noise* (a random fraction of the pixels set to 0); additive Gaussian noise
  is the other common choice (both in :func:`corrupt`).
* **Convolutional autoencoder.** Strided convolutions in the encoder, transposed convolutions
  (chapter 4) in the decoder: Masci, Meier, Ciresan & Schmidhuber, *Stacked Convolutional
  Auto-Encoders for Hierarchical Feature Extraction*, ICANN 2011
  (https://people.idsia.ch/~ciresan/data/icann2011.pdf).
* **Retrieval.** The codes of a database of images go into an :class:`EmbeddingIndex`; a query
  image's code is compared with all of them (exact, brute-force k nearest neighbours, Euclidean or
  cosine), and :func:`precision_at_k` measures how many of the k results are relevant (here: of
  the query's class). Manning, Raghavan & Schütze, *Introduction to Information Retrieval*, 2008,
  section 8.4 (https://nlp.stanford.edu/IR-book/html/htmledition/evaluation-of-ranked-retrieval-results-1.html).

Deviations from the papers: Hinton & Salakhutdinov pre-train a deep fully connected autoencoder
layer by layer with RBMs; Masci et al. use max-pooling and tie the decoder's weights to the
encoder's. Here both halves are small convolutional networks trained end to end with AdamW from a
random initialisation (which works for networks this shallow), with strided convolutions instead
of pooling and untied weights. The decoder outputs logits and the loss is the binary cross-entropy
with the clean image (Vincent et al.'s cross-entropy loss for inputs in [0, 1]); ``torch.sigmoid``
of the logits is the reconstruction.

Introduced in chapter 20, *Autoencoders and image retrieval*.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from companion._checks import check_positive_int, check_tensor
from companion.simclr import extract_features
from companion.train import warmup_cosine

__all__ = ["ENCODER_CHANNELS", "METRICS", "ConvAutoencoder", "EmbeddingIndex", "TrainLog", "conv_decoder",
           "conv_encoder", "corrupt", "encode", "precision_at_k", "reconstruction_loss", "retrieval_precision",
           "train_autoencoder"]

#: The encoder as data: the output channels of each stage, a 3x3 convolution with stride 2 (and
#: padding 1) followed by a ReLU, which halves the image's side. The decoder mirrors it with
#: transposed convolutions.
ENCODER_CHANNELS: tuple[int, ...] = (
    16,  # 28x28 -> 14x14
    32,  # 14x14 -> 7x7, then a linear layer to the code
)

#: The distances an :class:`EmbeddingIndex` knows.
METRICS = ("euclidean", "cosine")


def _check_geometry(channels: Sequence[int], code_size: int, image_channels: int, image_size: int) -> int:
    """Validate the builders' arguments; return the side of the last feature map."""
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or len(channels) == 0:
        raise ValueError(f"channels must be a non-empty sequence of positive ints, got {channels!r}")
    for c in channels:
        check_positive_int(c, "each entry of channels")
    check_positive_int(code_size, "code_size")
    check_positive_int(image_channels, "image_channels")
    check_positive_int(image_size, "image_size")
    factor = 2 ** len(channels)
    if image_size % factor:
        raise ValueError(f"image_size must be divisible by 2 ** len(channels) = {factor} (each stage halves the "
                         f"side, and the decoder doubles it back), got {image_size}")
    return image_size // factor


def conv_encoder(channels: Sequence[int] = ENCODER_CHANNELS, code_size: int = 32, image_channels: int = 1,
                 image_size: int = 28) -> nn.Sequential:
    """The encoder: stride-2 3x3 conv-ReLU stages, then a linear layer to the code.

    Args:
        channels: output channels of each stage (see :data:`ENCODER_CHANNELS`).
        code_size: length of the code (784 pixels -> 32 numbers with the defaults).
        image_channels: channels of the input images.
        image_size: side of the square input images, divisible by ``2 ** len(channels)``.

    Returns:
        An ``nn.Sequential`` mapping ``(N, image_channels, image_size, image_size)`` to ``(N, code_size)``.
    """
    side = _check_geometry(channels, code_size, image_channels, image_size)
    layers: list[nn.Module] = []
    c_in = image_channels
    for c_out in channels:
        # (N, c_in, H, W) -> (N, c_out, H / 2, W / 2)
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        c_in = c_out
    layers += [nn.Flatten(),  # (N, C, side, side) -> (N, C * side * side)
               nn.Linear(c_in * side * side, code_size)]  # (N, code_size): no activation, any real code
    return nn.Sequential(*layers)


def conv_decoder(channels: Sequence[int] = ENCODER_CHANNELS, code_size: int = 32, image_channels: int = 1,
                 image_size: int = 28) -> nn.Sequential:
    """The decoder, the encoder's mirror: a linear layer, then stride-2 transposed 3x3 convolutions.

    Each ``ConvTranspose2d(kernel 3, stride 2, padding 1, output_padding 1)`` doubles the side:
    ``(n - 1) * 2 - 2 + 3 + 1 = 2n`` (chapter 4's output-size formula). The last one has no ReLU:
    the decoder returns logits, and ``torch.sigmoid`` of them is the image.

    Args:
        channels, code_size, image_channels, image_size: as for :func:`conv_encoder` (the same values
            give the encoder's mirror image).

    Returns:
        An ``nn.Sequential`` mapping ``(N, code_size)`` to logits ``(N, image_channels, image_size, image_size)``.
    """
    side = _check_geometry(channels, code_size, image_channels, image_size)
    widths = list(channels)[::-1]  # the deepest stage first
    layers: list[nn.Module] = [nn.Linear(code_size, widths[0] * side * side), nn.ReLU(inplace=True),
                               nn.Unflatten(1, (widths[0], side, side))]  # (N, C, side, side)
    outputs = widths[1:] + [image_channels]
    for i, (c_in, c_out) in enumerate(zip(widths, outputs)):
        # (N, c_in, H, W) -> (N, c_out, 2H, 2W)
        layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1))
        if i < len(widths) - 1:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ConvAutoencoder(nn.Module):
    """A convolutional autoencoder: ``features(x)`` is the code, ``forward(x)`` the reconstruction's logits.

    Args:
        channels: output channels of the encoder's stages (see :data:`ENCODER_CHANNELS`).
        code_size: length of the code; an undercomplete autoencoder has ``code_size`` smaller than
            the number of pixels.
        image_channels: channels of the images.
        image_size: side of the square images.
    """

    def __init__(self, channels: Sequence[int] = ENCODER_CHANNELS, code_size: int = 32, image_channels: int = 1,
                 image_size: int = 28) -> None:
        super().__init__()
        self.encoder = conv_encoder(channels, code_size, image_channels, image_size)
        self.decoder = conv_decoder(channels, code_size, image_channels, image_size)
        self.image_shape = (image_channels, image_size, image_size)
        self.code_size = code_size

    def _check(self, x: Tensor) -> None:
        check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)", floating=True)
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must be (N, {', '.join(map(str, self.image_shape))}) for this autoencoder, "
                             f"got {tuple(x.shape)}")

    def features(self, x: Tensor) -> Tensor:
        """The code: ``x (Tensor[N, C, H, W])`` -> ``Tensor[N, code_size]``."""
        self._check(x)
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        """Logits of the image: ``code (Tensor[N, code_size])`` -> ``Tensor[N, C, H, W]``."""
        check_tensor(code, "code", ndim=2, shape_hint="(N, code_size)", floating=True)
        if code.shape[1] != self.code_size:
            raise ValueError(f"code must be (N, {self.code_size}), got {tuple(code.shape)}")
        return self.decoder(code)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the reconstruction, ``Tensor[N, C, H, W]``; ``torch.sigmoid`` of them is the image."""
        return self.decode(self.features(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """The reconstructed images in [0, 1], ``Tensor[N, C, H, W]`` (eval mode, no gradients)."""
        was_training = self.training
        self.eval()
        out = torch.sigmoid(self(x))
        self.train(was_training)
        return out


# --- corruption, loss, training -----------------------------------------------------------------

def corrupt(images: Tensor, kind: str = "gaussian", level: float = 0.3,
            generator: torch.Generator | None = None) -> Tensor:
    """A corrupted copy of a batch, the input of a denoising autoencoder.

    Args:
        images (Tensor[N, C, H, W]): in [0, 1].
        kind: ``"gaussian"``: add ``level * N(0, 1)`` noise to every pixel and clip to [0, 1];
            ``"masking"``: set a random fraction ``level`` of the pixels to 0 (Vincent et al., 2008).
        level: the noise's standard deviation, or the fraction of pixels masked (in [0, 1]).
        generator: a CPU ``torch.Generator`` for repeatable noise; ``None`` uses torch's global one.

    Returns:
        Tensor[N, C, H, W] in [0, 1], same dtype and device.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if kind not in ("gaussian", "masking"):
        raise ValueError(f"kind must be 'gaussian' or 'masking', got {kind!r}")
    if not 0 <= level <= (1 if kind == "masking" else math.inf):
        raise ValueError(f"level must be >= 0 (a standard deviation) for gaussian noise and in [0, 1] (a fraction) "
                         f"for masking, got {level} for {kind}")
    if kind == "gaussian":
        noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
        return (images + level * noise).clamp(0, 1)
    keep = torch.rand(images.shape, generator=generator, dtype=images.dtype).to(images.device) >= level
    return images * keep


def reconstruction_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy between the decoder's logits and the *clean* images, averaged over pixels.

    Args:
        logits (Tensor[N, C, H, W]): the decoder's output before the sigmoid.
        target (Tensor[N, C, H, W]): the images to reconstruct, in [0, 1] (for a denoising
            autoencoder, the clean ones, not the corrupted input).

    Returns:
        A scalar tensor.
    """
    check_tensor(logits, "logits", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(target, "target", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    if logits.shape != target.shape:
        raise ValueError(f"logits and target must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if target.numel() and (target.min() < 0 or target.max() > 1):
        raise ValueError(f"target must be in [0, 1] (the binary cross-entropy's targets are probabilities), got "
                         f"values in [{float(target.min()):.3g}, {float(target.max()):.3g}]: undo any "
                         "normalisation of the images first")
    return F.binary_cross_entropy_with_logits(logits, target)


@dataclass
class TrainLog:
    """What :func:`train_autoencoder` measured: the loss of every step, and the wall time."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_autoencoder(model: nn.Module, images: Tensor, *, epochs: int = 1, batch_size: int = 128,
                      lr: float = 3e-3, weight_decay: float = 0.0, noise: str | None = None,
                      noise_level: float = 0.3, seed: int = 0, time_budget: float | None = None,
                      progress: bool = True) -> TrainLog:
    """Train an autoencoder to reconstruct ``images`` (denoising, when ``noise`` is given).

    Every step: a shuffled batch, optionally corrupted (:func:`corrupt`), the model's logits, the
    :func:`reconstruction_loss` against the clean batch, an AdamW step; the learning rate follows
    ``companion.train.warmup_cosine`` over the steps (or the time budget).

    Args:
        model: maps images ``(N, C, H, W)`` to logits of the same shape (e.g. :class:`ConvAutoencoder`);
            trained in place, on the device of ``images``.
        images (Tensor[N, C, H, W]): the training images in [0, 1]; labels are not used.
        epochs: passes over the images.
        batch_size: images per step (the last, incomplete batch of an epoch is dropped).
        lr, weight_decay: AdamW's.
        noise: ``None`` (a plain autoencoder), ``"gaussian"`` or ``"masking"`` (a denoising one).
        noise_level: the corruption's level (see :func:`corrupt`).
        seed: seeds the shuffling and the noise.
        time_budget: stop after this many seconds; the schedule then runs on the fraction spent.
        progress: show a progress bar.

    Returns:
        A :class:`TrainLog`; the model is left in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if not 1 <= batch_size <= len(images):
        raise ValueError(f"batch_size must be in [1, len(images) = {len(images)}], got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if noise is not None:
        corrupt(images[:1], noise, noise_level)  # validates kind and level before training starts
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"time_budget must be a positive number of seconds or None, got {time_budget}")
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(images) // batch_size
    total = epochs * steps_per_epoch
    schedule = warmup_cosine(warmup=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    log, start, step = TrainLog(), time.perf_counter(), 0
    model.train()
    bar = tqdm(total=total, desc="autoencoder", unit="step", disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)  # (N,)
        for i in range(steps_per_epoch):
            fraction = (time.perf_counter() - start) / time_budget if time_budget else step / total
            if fraction >= 1:
                break
            for group in opt.param_groups:
                group["lr"] = lr * schedule(fraction)
            clean = images[order[i * batch_size:(i + 1) * batch_size].to(images.device)]  # (B, C, H, W)
            inputs = clean if noise is None else corrupt(clean, noise, noise_level, generator)
            loss = reconstruction_loss(model(inputs), clean)  # the target is always the clean image
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.loss.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{log.loss[-1]:.4f}", refresh=False)
    bar.close()
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


def encode(model: nn.Module, images: Tensor, batch_size: int = 1024) -> Tensor:
    """The codes of ``images``: ``model.features(x)`` (or ``model(x)``) in eval mode, batch by batch.

    The same computation as :func:`companion.simclr.extract_features` (chapter 13's frozen features),
    which it calls.

    Args:
        model: an autoencoder (its ``features`` is the encoder) or an encoder.
        images (Tensor[N, C, H, W]): the images.

    Returns:
        Tensor[N, D] (float32, on the CPU), whatever the device of the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(images, Tensor) and images.dim() == 4 and len(images) == 0:
        return images.new_zeros(0, 0)  # (0, D): nothing to encode
    return extract_features(model, images, batch_size)  # (N, D)


# --- retrieval ---------------------------------------------------------------------------------------

def _k_smallest(d: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` smallest entries of every row of ``d (Tensor[B, N])`` and their columns, smallest first,
    equal values in order of column: what a stable sort of each row gives, without sorting all N."""
    values, indices = torch.topk(d, k, dim=1, largest=False, sorted=False)  # (B, k), any order
    by_index = indices.argsort(dim=1)  # (B, k): first by column ...
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = values.argsort(dim=1, stable=True)  # ... then stably by value
    values, indices = values.gather(1, by_value), indices.gather(1, by_value)
    # topk may take any of several entries tied with the k-th value: redo those rows with a stable sort
    ambiguous = torch.nonzero((d <= values[:, -1:]).sum(1) > k)[:, 0]  # (A,)
    if len(ambiguous):
        d_sorted, order = torch.sort(d[ambiguous], dim=1, stable=True)  # (A, N)
        values[ambiguous], indices[ambiguous] = d_sorted[:, :k], order[:, :k]
    return values, indices


class EmbeddingIndex:
    """Exact k-nearest-neighbour search over a database of embeddings (brute force, batched, in torch).

    Every query is compared with every database row: Euclidean distances from
    ``|q - x|^2 = |q|^2 - 2 q.x + |x|^2`` (one matrix product per batch of queries, as scikit-learn's
    ``euclidean_distances``), or cosine distances ``1 - q.x / (|q| |x|)`` (rows normalised once; a
    zero row has distance 1 to everything, as in scikit-learn). Results are sorted by distance, and
    equal distances by database index (a stable sort), so ties are resolved the same way every time.

    Args:
        embeddings (Tensor[N, D]): the database, floating point; kept in its dtype and on its device.
        metric: ``"euclidean"`` or ``"cosine"``.
    """

    def __init__(self, embeddings: Tensor, metric: str = "euclidean") -> None:
        check_tensor(embeddings, "embeddings", ndim=2, shape_hint="(N, D)", floating=True)
        if len(embeddings) == 0:
            raise ValueError("embeddings is empty: an index needs at least one row")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if not torch.isfinite(embeddings).all():
            raise ValueError("embeddings contain NaN or infinite values")
        self.metric = metric
        self.dim = embeddings.shape[1]
        if metric == "cosine":
            self.database = F.normalize(embeddings.detach(), dim=1)  # (N, D), unit rows (or 0)
        else:
            self.database = embeddings.detach()
        self.squared_norms = self.database.pow(2).sum(1)  # (N,)

    def __len__(self) -> int:
        return len(self.database)

    def _check_queries(self, queries: Tensor) -> Tensor:
        check_tensor(queries, "queries", ndim=2, shape_hint="(Q, D)", floating=True)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries must have D = {self.dim} columns like the index's embeddings, got "
                             f"{tuple(queries.shape)}")
        if not torch.isfinite(queries).all():
            raise ValueError("queries contain NaN or infinite values")
        return queries.detach().to(self.database.device, self.database.dtype)

    def distances(self, queries: Tensor) -> Tensor:
        """Distances from every query to every database row.

        Args:
            queries (Tensor[Q, D]): in the embeddings' space.

        Returns:
            Tensor[Q, N], in the index's dtype.
        """
        q = self._check_queries(queries)
        if self.metric == "cosine":
            return 1 - F.normalize(q, dim=1) @ self.database.T  # (Q, N)
        squared = q.pow(2).sum(1, keepdim=True) - 2 * q @ self.database.T + self.squared_norms  # (Q, 1) + (Q, N) + (N,)
        return squared.clamp_min(0).sqrt()  # rounding can make a tiny distance negative

    def search(self, queries: Tensor, k: int, *, exclude: Tensor | None = None,
               batch_size: int = 1024) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest database rows of every query.

        Args:
            queries (Tensor[Q, D]): in the embeddings' space.
            k: neighbours per query.
            exclude (Tensor[Q], int64): for each query, a database index to leave out of its results
                (its own position, when the queries are the database itself, so that an image is not
                retrieved as its own nearest neighbour); -1 leaves nothing out.
            batch_size: queries compared at once (memory: ``batch_size * N`` distances).

        Returns:
            ``(distances, indices)``, each Tensor[Q, k], nearest first; ties in order of index.
        """
        q = self._check_queries(queries)
        check_positive_int(k, "k")
        check_positive_int(batch_size, "batch_size")
        if exclude is not None:
            check_tensor(exclude, "exclude", ndim=1, shape_hint="(Q,)")
            if exclude.dtype != torch.int64 or len(exclude) != len(q):
                raise ValueError(f"exclude must be an int64 tensor (Q,) = ({len(q)},) of database indices, got "
                                 f"{exclude.dtype} of shape {tuple(exclude.shape)}")
            if len(exclude) and (exclude.min() < -1 or exclude.max() >= len(self)):
                raise ValueError(f"exclude holds database indices in [0, {len(self) - 1}] (or -1 for none), got "
                                 f"values in [{int(exclude.min())}, {int(exclude.max())}]")
        available = len(self) - (1 if exclude is not None and bool((exclude >= 0).any()) else 0)
        if k > available:
            raise ValueError(f"k = {k} is more than the {available} database rows a query can get")
        all_distances, all_indices = [], []
        for start in range(0, len(q), batch_size):
            d = self.distances(q[start:start + batch_size])  # (B, N)
            if exclude is not None:
                leave_out = exclude[start:start + batch_size].to(d.device)  # (B,)
                rows = torch.nonzero(leave_out >= 0)[:, 0]  # the queries that leave something out
                d[rows, leave_out[rows]] = math.inf
            values, indices = _k_smallest(d, k)  # (B, k), (B, k)
            all_distances.append(values)
            all_indices.append(indices)
        if not all_distances:
            empty = q.new_zeros(0, k)
            return empty, empty.long()
        return torch.cat(all_distances), torch.cat(all_indices)  # (Q, k), (Q, k)


def precision_at_k(retrieved_labels: Tensor, query_labels: Tensor, k: int | None = None) -> float:
    """Precision@k: the fraction of the first ``k`` results that are relevant, averaged over the queries.

    A result is relevant when its label equals the query's. For one query,
    ``P@k = |relevant among the first k results| / k``; the function returns the mean over queries.

    Args:
        retrieved_labels (Tensor[Q, K]): the labels of each query's results, nearest first (the
            query itself must not be among them).
        query_labels (Tensor[Q]): the label of each query.
        k: how many results count (default: all ``K``).

    Returns:
        A float in [0, 1].
    """
    check_tensor(retrieved_labels, "retrieved_labels", ndim=2, shape_hint="(Q, K)")
    check_tensor(query_labels, "query_labels", ndim=1, shape_hint="(Q,)")
    if len(retrieved_labels) != len(query_labels):
        raise ValueError(f"retrieved_labels (Q, K) and query_labels (Q,) must have the same Q, got "
                         f"{tuple(retrieved_labels.shape)} and {tuple(query_labels.shape)}")
    if len(query_labels) == 0:
        raise ValueError("no queries: precision@k is an average over at least one query")
    k = retrieved_labels.shape[1] if k is None else check_positive_int(k, "k")
    if k > retrieved_labels.shape[1]:
        raise ValueError(f"k = {k} is more than the {retrieved_labels.shape[1]} results per query")
    relevant = retrieved_labels[:, :k] == query_labels[:, None].to(retrieved_labels.device)  # (Q, k)
    return float(relevant.double().mean())


def retrieval_precision(index: EmbeddingIndex, labels: Tensor, queries: Tensor, query_labels: Tensor,
                        ks: Sequence[int], *, exclude: Tensor | None = None) -> dict[int, float]:
    """Precision@k of an index for several k, with one search.

    Args:
        index: the database (its rows in the order of ``labels``).
        labels (Tensor[N]): the database's labels.
        queries (Tensor[Q, D]), query_labels (Tensor[Q]): the queries and their labels.
        ks: the k of each precision@k.
        exclude: passed to :meth:`EmbeddingIndex.search`.

    Returns:
        ``{k: precision@k}``.
    """
    check_tensor(labels, "labels", ndim=1, shape_hint="(N,)")
    if len(labels) != len(index):
        raise ValueError(f"labels must have one entry per database row ({len(index)}), got {len(labels)}")
    if len(ks) == 0:
        raise ValueError("ks must name at least one k")
    _, indices = index.search(queries, max(check_positive_int(k, "each k") for k in ks), exclude=exclude)
    retrieved = labels.to(indices.device)[indices]  # (Q, max k)
    return {k: precision_at_k(retrieved, query_labels, k) for k in ks}
