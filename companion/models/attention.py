"""Attention over the positions of an image: SAGAN's self-attention, AG-CNN's hard-attention crop, and
local self-attention with relative position embeddings.

The module holds three ways of letting an image decide where to look: :class:`SelfAttention2d`
(every position reads every other one, SAGAN, below), :func:`attention_crop` (a hard, 0-or-1
attention that crops the input where a network's features are strongest, AG-CNN) and
:class:`LocalSelfAttention2d` (each pixel reads its k x k neighbourhood, stand-alone
self-attention).

**SAGAN.**

Zhang, Goodfellow, Metaxas & Odena, *Self-Attention Generative Adversarial Networks*, ICML 2019
(https://arxiv.org/abs/1805.08318). A convolution only mixes neighbouring pixels; a self-attention
layer lets every position read every other one. For a feature map ``x`` with ``C`` channels and
``M = H * W`` positions, 1x1 convolutions give queries ``f(x)`` and keys ``g(x)`` with ``C / 8``
channels and values ``h(x)`` with ``C``; position ``i`` attends to position ``j`` with weight

    beta[i, j] = softmax_j( f(x_i) . g(x_j) ),

reads ``o_i = sum_j beta[i, j] h(x_j)``, and the layer returns ``y = gamma * o + x``. The scale
``gamma`` is learned and starts at 0, so the layer starts as the identity and the network first
relies on local (convolutional) evidence, then learns how much non-local evidence to add.

Deviations from the paper: the paper also gives ``h`` only ``C / 8`` channels and maps ``o`` back
to ``C`` channels with a fourth 1x1 convolution ``v``; here, as in the widely used simpler form,
``h`` keeps ``C`` channels and there is no ``v``. The paper's generator and discriminator also wrap
every convolution in spectral normalisation; that belongs to the GAN (chapter 22), not to this layer.

**AG-CNN.** Guan, Huang, Zhong, Zheng, Zheng & Yang, *Diagnose like a Radiologist: Attention Guided
Convolutional Neural Network for Thorax Disease Classification*, 2018
(https://arxiv.org/abs/1801.09927), "attention guided mask inference": the heat map of a global
branch is the maximum over channels of the absolute values of its last feature map, ``H(x, y) = max_k |f_k(x, y)|``,
normalised to [0, 1]; the mask ``H > tau`` (tau = 0.7) is cut down to its largest connected
region, whose bounding box is cropped from the input image, resized, and fed to a local branch.
Deviation: the paper maps the box from the feature map to the image; here the heat map is first
upsampled (bilinear) to the image's size and thresholded there, which gives the same box up to the
rounding of the map's coarse cells. Regions are 8-connected (the paper does not say).

**Stand-alone self-attention.** Ramachandran, Parmar, Vaswani, Bello, Levskaya & Shlens, *Stand-Alone
Self-Attention in Vision Models*, NeurIPS 2019 (https://arxiv.org/abs/1906.05909), section 3: pixel
``(i, j)`` attends to the ``k x k`` neighbourhood ``N_k(i, j)`` around it,

    y_ij = sum_{(a, b) in N_k(i, j)} softmax_ab( q_ij . k_ab + q_ij . r_{a-i, b-j} ) v_ab,

with ``q = W_Q x``, ``k = W_K x``, ``v = W_V x`` (1x1 convolutions) and ``r_{a-i, b-j}`` the
concatenation of a learned *row-offset* embedding ``r_{a-i}`` and a *column-offset* embedding
``r_{b-j}``, each half the width of a head. Deviations and choices: the relative embeddings are
shared by all heads (as in timm's relative-position attention); positions outside the image take no
part in the softmax (the paper does not say how it pads).

Introduced in chapter 11, *Attention in vision*; :class:`SelfAttention2d` is used by the SAGAN of
chapter 22.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor


class SelfAttention2d(nn.Module):
    """SAGAN self-attention: ``y = gamma * attention(x) + x`` over the ``H * W`` positions of ``x``.

    Args:
        channels: channels ``C`` of the feature map (at least ``reduction``).
        reduction: queries and keys have ``C // reduction`` channels (the paper's 8).

    Attributes:
        query, key: 1x1 convolutions ``C -> C // reduction``.
        value: 1x1 convolution ``C -> C``.
        gamma: the learned scale of the attention output, initialised at 0.

    Shapes:
        ``forward(x)``: ``(N, C, H, W) -> (N, C, H, W)``; with ``return_attention=True`` also the
        attention map ``(N, H * W, H * W)``, row ``i`` (a query position, ``i = row * W + col``)
        holding the weights it gives every position; each row sums to 1.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(reduction, "reduction")
        if channels < reduction:
            raise ValueError(f"channels must be at least reduction={reduction} so that queries and keys keep "
                             f"channels // {reduction} >= 1 channel, got channels={channels}")
        self.channels = channels
        self.query = nn.Conv2d(channels, channels // reduction, 1)  # f
        self.key = nn.Conv2d(channels, channels // reduction, 1)    # g
        self.value = nn.Conv2d(channels, channels, 1)               # h
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``gamma * o + x`` (and the attention map when ``return_attention``)."""
        check_tensor(x, "x", ndim=4, shape_hint=f"(N, {self.channels}, H, W)", floating=True)
        if x.shape[1] != self.channels:
            raise ValueError(f"SelfAttention2d({self.channels}) expects x of shape (N, {self.channels}, H, W), "
                             f"got {tuple(x.shape)}")
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (N, M, C/8), M = H*W positions
        k = self.key(x).flatten(2)                    # (N, C/8, M)
        v = self.value(x).flatten(2)                  # (N, C, M)
        attention = torch.softmax(q @ k, dim=-1)      # (N, M, M): row i = query position i
        o = v @ attention.transpose(1, 2)             # (N, C, M): o[:, :, i] = sum_j beta[i, j] v[:, :, j]
        o = o.view(n, c, h, w)                        # (N, C, H, W)
        y = self.gamma * o + x
        return (y, attention) if return_attention else y


# --- hard attention: AG-CNN's crop ---------------------------------------------------------------


def attention_heatmap(features: Tensor) -> Tensor:
    """AG-CNN's heat map: ``max_k |f_k(x, y)|`` over the channels, min-max normalised to [0, 1] per image.

    Args:
        features (Tensor[N, C, h, w]): the last feature map of the global branch.

    Returns:
        Tensor[N, h, w]: 1 at each image's strongest position, 0 at its weakest (all 0 for a constant map).
    """
    check_tensor(features, "features", ndim=4, shape_hint="(N, C, h, w)", floating=True)
    heat = features.abs().amax(dim=1)                    # (N, h, w)
    low = heat.flatten(1).amin(1)[:, None, None]         # (N, 1, 1)
    high = heat.flatten(1).amax(1)[:, None, None]
    return (heat - low) / (high - low).clamp_min(torch.finfo(heat.dtype).tiny)


def largest_region_box(mask: Tensor) -> Tensor:
    """The bounding box of the largest 8-connected region of ``True`` pixels of a 2-D mask.

    Args:
        mask (Tensor[H, W]): bool.

    Returns:
        Tensor[4]: ``(x0, y0, x1, y1)`` (int64), corners in pixel-edge coordinates, so that the region
        is ``mask[y0:y1, x0:x1]``; the whole image ``(0, 0, W, H)`` when the mask is empty.
        Ties between regions of the same size go to the one met first in row-major order.
    """
    check_tensor(mask, "mask", ndim=2, shape_hint="(H, W)")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    from skimage.measure import label  # scikit-image's connected components (a dependency of the course)

    h, w = mask.shape
    regions = torch.from_numpy(label(mask.cpu().numpy(), connectivity=2))  # (H, W): 0 background, 1, 2, ...
    if regions.max() == 0:
        return torch.tensor([0, 0, w, h])
    sizes = torch.bincount(regions.flatten())[1:]                         # pixels per region 1, 2, ...
    rows, cols = torch.nonzero(regions == 1 + int(sizes.argmax()), as_tuple=True)
    return torch.stack([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])


def attention_crop(images: Tensor, heatmap: Tensor, threshold: float = 0.7,
                   size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """AG-CNN's hard attention: crop each image to the largest region where its heat map exceeds ``threshold``.

    Args:
        images (Tensor[N, C, H, W]): the inputs of the global branch.
        heatmap (Tensor[N, h, w]): values in [0, 1], e.g. :func:`attention_heatmap`; upsampled
            (bilinear) to ``H x W`` before thresholding.
        threshold: the paper's tau (0.7).
        size: ``(height, width)`` of the crops, the local branch's input; default ``(H, W)``.

    Returns:
        ``crops`` (Tensor[N, C, height, width]), each box's pixels resized bilinearly, and
        ``boxes`` (Tensor[N, 4], int64): the ``(x0, y0, x1, y1)`` of :func:`largest_region_box`.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(heatmap, "heatmap", ndim=3, shape_hint="(N, h, w)", floating=True)
    if heatmap.shape[0] != images.shape[0]:
        raise ValueError(f"images and heatmap must hold the same number of images, got {images.shape[0]} "
                         f"and {heatmap.shape[0]}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    h, w = images.shape[-2:]
    size = (h, w) if size is None else size
    heat = F.interpolate(heatmap[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]  # (N, H, W)
    boxes = torch.stack([largest_region_box(m) for m in heat > threshold])                        # (N, 4)
    crops = [F.interpolate(image[None, :, y0:y1, x0:x1], size=size, mode="bilinear", align_corners=False)
             for image, (x0, y0, x1, y1) in zip(images, boxes.tolist())]                          # (1, C, *size)
    return torch.cat(crops), boxes


# --- local self-attention with relative position embeddings --------------------------------------


class LocalSelfAttention2d(nn.Module):
    """Stand-alone local self-attention: each pixel attends to its ``k x k`` neighbourhood.

    The logits are ``q . k + q . r``, with ``r`` the learned embedding of the (row, column) offset of
    the key from the query: the first half of each head's query meets the row-offset embedding,
    the second half the column-offset one. The computation loops over the ``k^2`` offsets and
    shifts the padded keys and values, so memory holds ``k^2`` logits per pixel and head but never
    the ``k^2 C`` unfolded keys and values of a plain ``F.unfold`` implementation.

    Args:
        in_channels, out_channels: of the feature map.
        kernel_size: the odd spatial extent ``k`` of the neighbourhood (the paper uses 7).
        heads: attention heads; ``out_channels / heads`` must be even.

    Attributes:
        query, key, value: 1x1 convolutions ``in_channels -> out_channels``, without bias.
        rel_rows, rel_cols: ``(k, d / 2)`` embeddings of the offsets ``-(k // 2), ..., k // 2``
            (``d = out_channels / heads``), shared by the heads.

    Shapes:
        ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 7, heads: int = 1) -> None:
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                            (kernel_size, "kernel_size"), (heads, "heads")):
            check_positive_int(value, name)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a neighbourhood centred on its pixel), got {kernel_size}")
        if out_channels % heads or (out_channels // heads) % 2:
            raise ValueError(f"out_channels / heads must be an even integer (half of each head meets the row "
                             f"offsets, half the column offsets), got out_channels={out_channels} and heads={heads}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.heads = kernel_size, heads
        self.head_dim = out_channels // heads
        self.query = nn.Conv2d(in_channels, out_channels, 1, bias=False)  # W_Q
        self.key = nn.Conv2d(in_channels, out_channels, 1, bias=False)    # W_K
        self.value = nn.Conv2d(in_channels, out_channels, 1, bias=False)  # W_V
        self.rel_rows = nn.Parameter(torch.randn(kernel_size, self.head_dim // 2) / self.head_dim ** 0.5)
        self.rel_cols = nn.Parameter(torch.randn(kernel_size, self.head_dim // 2) / self.head_dim ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x", ndim=4, shape_hint=f"(N, {self.in_channels}, H, W)", floating=True)
        if x.shape[1] != self.in_channels:
            raise ValueError(f"LocalSelfAttention2d({self.in_channels}, ...) expects x of shape "
                             f"(N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        n, _, h, w = x.shape
        k, p, heads, d = self.kernel_size, self.kernel_size // 2, self.heads, self.head_dim
        q = self.query(x).view(n, heads, d, h, w)                                # (N, heads, d, H, W)
        keys = F.pad(self.key(x), (p, p, p, p)).view(n, heads, d, h + 2 * p, w + 2 * p)
        values = F.pad(self.value(x), (p, p, p, p)).view(n, heads, d, h + 2 * p, w + 2 * p)
        inside = F.pad(x.new_ones(h, w), (p, p, p, p)).bool()                   # (H + 2p, W + 2p)
        # q . r = q_rows . r_{a-i} + q_cols . r_{b-j}: k + k products per pixel instead of k^2
        by_row = torch.einsum("nhdyx,ad->nhayx", q[:, :, : d // 2], self.rel_rows)  # (N, heads, k, H, W)
        by_col = torch.einsum("nhdyx,bd->nhbyx", q[:, :, d // 2:], self.rel_cols)   # (N, heads, k, H, W)
        logits = []
        for a in range(k):          # key row i + a - p
            for b in range(k):      # key column j + b - p
                logit = (q * keys[..., a:a + h, b:b + w]).sum(2) + by_row[:, :, a] + by_col[:, :, b]  # (N, heads, H, W)
                logits.append(logit.masked_fill(~inside[a:a + h, b:b + w], float("-inf")))  # outside: no weight
        weights = torch.stack(logits, dim=2).softmax(dim=2)                       # (N, heads, k*k, H, W)
        out = torch.zeros_like(q)
        for a in range(k):
            for b in range(k):
                out = out + weights[:, :, a * k + b, None] * values[..., a:a + h, b:b + w]  # (N, heads, d, H, W)
        return out.view(n, self.out_channels, h, w)


__all__ = ["LocalSelfAttention2d", "SelfAttention2d", "attention_crop", "attention_heatmap", "largest_region_box"]
