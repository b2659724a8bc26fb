"""A small Vision Transformer (ViT): an image as a sequence of patches, read by a transformer encoder.

Dosovitskiy et al., *An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale*,
ICLR 2021 (https://arxiv.org/abs/2010.11929), built on the transformer of Vaswani et al.,
*Attention Is All You Need*, NeurIPS 2017 (https://arxiv.org/abs/1706.03762).

1. Patch embedding: cut the ``S x S`` image into ``P = (S / p)^2`` patches of ``p x p`` pixels and
   map each linearly to a ``dim``-vector. A ``p x p`` convolution with stride ``p`` is exactly that
   linear map applied to every patch.
2. Prepend a learned class token and add learned position embeddings (one per token).
3. ``depth`` pre-norm transformer blocks: ``x = x + MSA(LN(x))``, then ``x = x + MLP(LN(x))``.
4. A final layer norm; the class token's vector goes to a linear classifier.

Multi-head self-attention (:class:`MultiHeadSelfAttention`) is written out: queries, keys and
values are linear maps of the tokens, split into ``heads`` heads of ``dim / heads`` channels;
each head computes ``softmax(Q K^T / sqrt(d)) V``; the heads are concatenated and projected. Given
the same weights (:func:`load_torch_attention`) it equals ``nn.MultiheadAttention(dim, heads,
batch_first=True)``, and it can return its attention weights for plotting.

Deviations from the paper: the classifier is one linear layer (the paper pre-trains with an MLP
head and fine-tunes with a linear one); the layer norms use ``eps = 1e-6`` as the paper's code and
torchvision do. ``features(x)`` returns the normalised tokens ``(N, 1 + P, dim)`` rather than a
feature map, since the head reads the class token; ``patch_grid`` turns the patch tokens back into
a ``(N, dim, S / p, S / p)`` map.

Introduced in chapter 11, *Attention in vision*.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor
from companion.models._input import check_images


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a sequence of ``T`` tokens.

    Args:
        dim: token width; a multiple of ``heads``.
        heads: number of heads, each ``dim // heads`` wide.

    Attributes:
        q_proj, k_proj, v_proj: ``dim -> dim`` linear maps to queries, keys and values (all heads).
        out_proj: ``dim -> dim`` linear map applied to the concatenated heads.

    Shapes:
        ``forward(x)``: ``(N, T, dim) -> (N, T, dim)``; with ``return_attention=True`` also the
        attention weights ``(N, heads, T, T)``, each row summing to 1.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        check_positive_int(dim, "dim")
        check_positive_int(heads, "heads")
        if dim % heads != 0:
            raise ValueError(f"dim must be a multiple of heads (each head gets dim // heads channels), "
                             f"got dim={dim} and heads={heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _split_heads(self, x: Tensor) -> Tensor:
        n, t, _ = x.shape
        return x.view(n, t, self.heads, self.head_dim).transpose(1, 2)  # (N, T, dim) -> (N, heads, T, d)

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Attend every token to every token; return ``(N, T, dim)`` (and the weights when asked)."""
        check_tensor(x, "x", ndim=3, shape_hint=f"(N, T, {self.dim})", floating=True)
        if x.shape[-1] != self.dim:
            raise ValueError(f"MultiHeadSelfAttention(dim={self.dim}) expects x of shape (N, T, {self.dim}), "
                             f"got {tuple(x.shape)}")
        n, t, _ = x.shape
        q = self._split_heads(self.q_proj(x))  # (N, heads, T, d)
        k = self._split_heads(self.k_proj(x))  # (N, heads, T, d)
        v = self._split_heads(self.v_proj(x))  # (N, heads, T, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (N, heads, T, T)
        attention = scores.softmax(dim=-1)                         # row i: how token i spreads its attention
        out = attention @ v                                        # (N, heads, T, d)
        out = out.transpose(1, 2).reshape(n, t, self.dim)          # (N, T, heads * d): heads concatenated
        out = self.out_proj(out)
        return (out, attention) if return_attention else out


def load_torch_attention(ours: MultiHeadSelfAttention, theirs: nn.MultiheadAttention) -> None:
    """Copy the weights of ``nn.MultiheadAttention(dim, heads)`` into ``ours``.

    torchvision-style attention keeps the three input projections stacked in one
    ``in_proj_weight`` of shape ``(3 * dim, dim)``: rows ``[0, dim)`` make the queries, then the
    keys, then the values.
    """
    if not isinstance(ours, MultiHeadSelfAttention) or not isinstance(theirs, nn.MultiheadAttention):
        raise TypeError(f"expected a MultiHeadSelfAttention and an nn.MultiheadAttention, "
                        f"got {type(ours).__name__} and {type(theirs).__name__}")
    if theirs.in_proj_weight is None or theirs.in_proj_bias is None or theirs.embed_dim != ours.dim \
            or theirs.num_heads != ours.heads:
        raise ValueError(f"need nn.MultiheadAttention({ours.dim}, {ours.heads}) with biases and equal q/k/v sizes, "
                         f"got embed_dim={theirs.embed_dim}, num_heads={theirs.num_heads}")
    weights = theirs.in_proj_weight.chunk(3, dim=0)  # 3 x (dim, dim): W_q, W_k, W_v
    biases = theirs.in_proj_bias.chunk(3, dim=0)     # 3 x (dim,)
    with torch.no_grad():
        for proj, w, b in zip([ours.q_proj, ours.k_proj, ours.v_proj], weights, biases):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))``.

    Args:
        dim: token width.
        heads: attention heads.
        mlp_dim: hidden width of the two-layer GELU MLP.
        dropout: dropout on each branch's output before it is added (0: none).

    Shapes:
        ``(N, T, dim) -> (N, T, dim)``.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive_int(mlp_dim, "mlp_dim")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        out, attention = self.attn(self.norm1(x), return_attention=True)
        x = x + self.dropout(out)
        x = x + self.dropout(self.mlp(self.norm2(x)))
        return (x, attention) if return_attention else x


class VisionTransformer(nn.Module):
    """ViT for ``(N, channels, image_size, image_size)`` images.

    Args:
        image_size: height and width of the input, a multiple of ``patch_size``.
        patch_size: side ``p`` of the square patches.
        dim: token width.
        depth: number of transformer blocks.
        heads: attention heads per block (``dim`` must be a multiple).
        mlp_dim: hidden width of the blocks' MLPs (the paper uses ``4 * dim``).
        num_classes: outputs of the classifier.
        channels: channels of the input images.
        dropout: dropout after the embeddings and on every residual branch.

    ``features(x)``: ``(N, channels, S, S) -> (N, 1 + P, dim)``, the normalised tokens (class token
    first); ``head(tokens)``: ``(N, 1 + P, dim) -> (N, num_classes)``.
    """

    def __init__(self, image_size: int, patch_size: int, dim: int, depth: int, heads: int, mlp_dim: int,
                 num_classes: int, channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        for value, name in [(image_size, "image_size"), (patch_size, "patch_size"), (dim, "dim"),
                            (depth, "depth"), (num_classes, "num_classes"), (channels, "channels")]:
            check_positive_int(value, name)
        if image_size % patch_size != 0:
            raise ValueError(f"image_size must be a multiple of patch_size, got image_size={image_size} and "
                             f"patch_size={patch_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.image_size, self.patch_size, self.channels, self.dim = image_size, patch_size, channels, dim
        self.grid = image_size // patch_size
        num_patches = self.grid ** 2

        self.patch_embed = nn.Conv2d(channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, 1 + num_patches, dim) * 0.02)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.classifier = nn.Linear(dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """Patch embeddings, class token and position embeddings: ``(N, C, S, S) -> (N, 1 + P, dim)``."""
        check_images(x, channels=self.channels, min_size=self.image_size, model="VisionTransformer")
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"VisionTransformer expects {self.image_size}x{self.image_size} images (it learned one "
                             f"position embedding per patch of that grid), got {x.shape[-2]}x{x.shape[-1]}")
        n = x.shape[0]
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, dim, S/p, S/p) -> (N, P, dim)
        cls = self.cls_token.expand(n, -1, -1)                    # (N, 1, dim)
        tokens = torch.cat([cls, patches], dim=1)                 # (N, 1 + P, dim)
        return self.dropout(tokens + self.pos_embedding)          # (1, 1 + P, dim) broadcast over N

    def features(self, x: Tensor) -> Tensor:
        """The encoded, normalised tokens: ``(N, channels, S, S) -> (N, 1 + P, dim)``, class token first."""
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def head(self, tokens: Tensor) -> Tensor:
        """The classifier on the class token: ``(N, 1 + P, dim) -> (N, num_classes)``."""
        check_tensor(tokens, "tokens", ndim=3, shape_hint=f"(N, 1 + P, {self.dim})", floating=True)
        return self.classifier(tokens[:, 0])  # (N, dim): the class token

    def forward(self, x: Tensor) -> Tensor:
        """``(N, channels, S, S) -> (N, num_classes)`` logits."""
        return self.head(self.features(x))

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """The attention weights of every block, for plotting: ``depth`` tensors ``(N, heads, 1 + P, 1 + P)``.

        Row 0 of a map is the class token's attention; ``map[:, :, 0, 1:].reshape(N, heads, S/p, S/p)``
        shows where on the image it looks.
        """
        x = self.embed(x)
        maps = []
        for block in self.blocks:
            x, attention = block(x, return_attention=True)
            maps.append(attention)
        return maps

    def patch_grid(self, tokens: Tensor) -> Tensor:
        """The patch tokens as a feature map: ``(N, 1 + P, dim) -> (N, dim, S/p, S/p)`` (class token dropped)."""
        check_tensor(tokens, "tokens", ndim=3, shape_hint=f"(N, 1 + P, {self.dim})", floating=True)
        n = tokens.shape[0]
        return tokens[:, 1:].transpose(1, 2).reshape(n, self.dim, self.grid, self.grid)  # (N, dim, S/p, S/p)


def load_torchvision_vit(ours: VisionTransformer, theirs: nn.Module) -> None:
    """Copy the weights of a ``torchvision.models.VisionTransformer`` of the same shape into ``ours``.

    torchvision names the parts differently (``conv_proj``, ``class_token``, ``encoder.layers``,
    ``ln_1``, ``self_attention``, ``mlp.0``/``mlp.3``, ``heads.head``) and keeps each block's three
    input projections stacked (see :func:`load_torch_attention`); the functions are the same. With
    ``theirs = torchvision.models.vit_b_16(weights="IMAGENET1K_V1")`` (a download) and
    ``ours = VisionTransformer(224, 16, 768, 12, 12, 3072, 1000)`` this loads the ImageNet weights.

    Raises:
        TypeError: ``ours`` is not a :class:`VisionTransformer` or ``theirs`` not torchvision's.
        ValueError: the two differ in channels, image size, patch size, width, depth, MLP width or classes
            (or, from :func:`load_torch_attention`, in heads).
    """
    from torchvision.models import VisionTransformer as TorchvisionViT

    if not isinstance(ours, VisionTransformer) or not isinstance(theirs, TorchvisionViT):
        raise TypeError(f"expected a VisionTransformer and a torchvision.models.VisionTransformer, "
                        f"got {type(ours).__name__} and {type(theirs).__name__}")
    mlp_dim = ours.blocks[0].mlp[0].out_features if len(ours.blocks) else theirs.mlp_dim
    mine = (ours.channels, ours.image_size, ours.patch_size, ours.dim, len(ours.blocks), mlp_dim,
            ours.classifier.out_features)
    other = (theirs.conv_proj.in_channels, theirs.image_size, theirs.patch_size, theirs.hidden_dim,
             len(theirs.encoder.layers), theirs.mlp_dim, theirs.num_classes)
    if mine != other or not hasattr(theirs.heads, "head") or len(theirs.heads) != 1:
        raise ValueError(f"the two ViTs must have the same (channels, image_size, patch_size, dim, depth, mlp_dim, "
                         f"num_classes) and torchvision's a single linear head; got {mine} and {other}")
    with torch.no_grad():
        ours.patch_embed.load_state_dict(theirs.conv_proj.state_dict())
        ours.cls_token.copy_(theirs.class_token)                   # (1, 1, dim)
        ours.pos_embedding.copy_(theirs.encoder.pos_embedding)     # (1, 1 + P, dim)
        for block, layer in zip(ours.blocks, theirs.encoder.layers):
            block.norm1.load_state_dict(layer.ln_1.state_dict())
            load_torch_attention(block.attn, layer.self_attention)
            block.norm2.load_state_dict(layer.ln_2.state_dict())
            block.mlp[0].load_state_dict(layer.mlp[0].state_dict())  # Linear(dim, mlp_dim)
            block.mlp[2].load_state_dict(layer.mlp[3].state_dict())  # Linear(mlp_dim, dim); mlp[1], [2] are GELU, dropout
        ours.norm.load_state_dict(theirs.encoder.ln.state_dict())
        ours.classifier.load_state_dict(theirs.heads.head.state_dict())


__all__ = ["MultiHeadSelfAttention", "TransformerBlock", "VisionTransformer", "load_torch_attention",
           "load_torchvision_vit"]
