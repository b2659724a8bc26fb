"""Self-attention over the positions of a feature map, as in the self-attention GAN (SAGAN).

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

Introduced in chapter 11, *Attention in vision*; used by the SAGAN of chapter 22.
"""

from __future__ import annotations

import torch
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


__all__ = ["SelfAttention2d"]
