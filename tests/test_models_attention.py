"""SAGAN self-attention, AG-CNN's crop, local self-attention, multi-head self-attention and the ViT.

The oracles: ``F.scaled_dot_product_attention`` for the SAGAN layer, a plain ``F.unfold``
implementation for local self-attention (values and gradients), known masks for the crop,
sums written out for the class-specificity of SE gates, ``nn.MultiheadAttention`` for our multi-head attention (same weights, same outputs, attention weights and gradients), and
torchvision's ``VisionTransformer`` for the whole ViT (its weights copied into ours).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from companion.models.attention import (LocalSelfAttention2d, SelfAttention2d, attention_crop, attention_heatmap,
                                        largest_region_box)
from companion.models.resnet import BasicBlock, ResNet
from companion.models.se import SEBasicBlock, class_specificity, se_gates
from companion.models.vit import MultiHeadSelfAttention, TransformerBlock, VisionTransformer, load_torch_attention

# --- SAGAN self-attention -----------------------------------------------------------------------


def sagan_reference(layer: SelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """``gamma * attention + x`` with torch's attention (no 1/sqrt(d) scaling in SAGAN: scale=1)."""
    n, c, h, w = x.shape
    q = F.conv2d(x, layer.query.weight, layer.query.bias).flatten(2).transpose(1, 2)  # (N, M, C/8)
    k = F.conv2d(x, layer.key.weight, layer.key.bias).flatten(2).transpose(1, 2)      # (N, M, C/8)
    v = F.conv2d(x, layer.value.weight, layer.value.bias).flatten(2).transpose(1, 2)  # (N, M, C)
    o = F.scaled_dot_product_attention(q, k, v, scale=1.0)                            # (N, M, C)
    return layer.gamma * o.transpose(1, 2).reshape(n, c, h, w) + x


@pytest.mark.parametrize(("channels", "reduction", "size"), [(8, 8, (4, 4)), (16, 8, (3, 5)), (24, 4, (6, 2)),
                                                              (32, 8, (1, 7))])
def test_self_attention_2d_matches_torch_attention_values_and_gradients(channels, reduction, size):
    torch.manual_seed(channels + reduction)
    ours = SelfAttention2d(channels, reduction)
    theirs = SelfAttention2d(channels, reduction)
    with torch.no_grad():
        ours.gamma.fill_(0.7)   # 0 at initialisation would hide the attention term
    theirs.load_state_dict(ours.state_dict())
    x1 = torch.randn(2, channels, *size, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y, attention = ours(x1, return_attention=True)
    expected = sagan_reference(theirs, x2)
    torch.testing.assert_close(y, expected)
    m = size[0] * size[1]
    assert attention.shape == (2, m, m)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, m))
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (expected * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_self_attention_2d_starts_as_the_identity_and_learns_gamma():
    torch.manual_seed(0)
    layer = SelfAttention2d(16)
    assert layer.gamma.item() == 0.0
    assert layer.query.out_channels == layer.key.out_channels == 2 and layer.value.out_channels == 16
    x = torch.randn(2, 16, 5, 5)
    y = layer(x)
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    (y * torch.randn_like(y)).sum().backward()
    assert layer.gamma.grad is not None and layer.gamma.grad.abs().item() > 0


def test_self_attention_2d_gradcheck():
    torch.manual_seed(0)
    layer = SelfAttention2d(8, 4).double()
    with torch.no_grad():
        layer.gamma.fill_(0.5)
    x = torch.randn(1, 8, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_self_attention_2d_map_rows_are_query_positions():
    # Keys that single out position 5 and queries that look for it: every row must put its weight on column 5.
    layer = SelfAttention2d(8, 8)
    with torch.no_grad():
        for conv in (layer.query, layer.key):
            conv.weight.zero_()
            conv.bias.zero_()
        layer.query.bias.fill_(1.0)          # every query is [1]
        layer.key.weight[0, 0] = 50.0        # key = 50 * channel 0
    x = torch.zeros(1, 8, 3, 3)
    x[0, 0, 1, 2] = 1.0                      # position 1 * 3 + 2 = 5
    _, attention = layer(x, return_attention=True)
    assert (attention[0].argmax(dim=-1) == 5).all() and attention[0, :, 5].min() > 0.99


def test_self_attention_2d_errors():
    with pytest.raises(ValueError, match="channels must be at least reduction=8"):
        SelfAttention2d(4)
    layer = SelfAttention2d(16)
    with pytest.raises(ValueError, match=r"SelfAttention2d\(16\) expects x of shape \(N, 16, H, W\), got \(2, 8, 4"):
        layer(torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, 16, H, W\)"):
        layer(torch.randn(16, 4, 4))
    with pytest.raises(TypeError, match="floating-point dtype"):
        layer(torch.zeros(2, 16, 4, 4, dtype=torch.long))


# --- multi-head self-attention -------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "heads", "tokens"), [(8, 1, 5), (16, 4, 7), (24, 3, 1), (32, 8, 10)])
def test_multi_head_attention_equals_torch_values_weights_and_gradients(dim, heads, tokens):
    torch.manual_seed(dim + heads + tokens)
    theirs = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():   # torch starts the biases at 0; random ones make the comparison stricter
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = MultiHeadSelfAttention(dim, heads)
    load_torch_attention(ours, theirs)
    x1 = torch.randn(3, tokens, dim, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    out, attention = ours(x1, return_attention=True)
    expected, expected_attention = theirs(x2, x2, x2, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(attention, expected_attention)   # (N, heads, T, T)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (expected * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    grad_w = torch.cat([ours.q_proj.weight.grad, ours.k_proj.weight.grad, ours.v_proj.weight.grad])
    grad_b = torch.cat([ours.q_proj.bias.grad, ours.k_proj.bias.grad, ours.v_proj.bias.grad])
    torch.testing.assert_close(grad_w, theirs.in_proj_weight.grad)
    torch.testing.assert_close(grad_b, theirs.in_proj_bias.grad)
    torch.testing.assert_close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad)


def test_multi_head_attention_gradcheck():
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(8, 2).double()
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_multi_head_attention_errors():
    with pytest.raises(ValueError, match="dim must be a multiple of heads .* got dim=10 and heads=4"):
        MultiHeadSelfAttention(10, 4)
    layer = MultiHeadSelfAttention(16, 4)
    with pytest.raises(ValueError, match=r"expects x of shape \(N, T, 16\), got \(2, 5, 8\)"):
        layer(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"x must be 3-D \(N, T, 16\)"):
        layer(torch.randn(5, 16))
    with pytest.raises(ValueError, match=r"need nn.MultiheadAttention\(16, 4\)"):
        load_torch_attention(layer, nn.MultiheadAttention(16, 2))
    with pytest.raises(TypeError, match="expected a MultiHeadSelfAttention and an nn.MultiheadAttention"):
        load_torch_attention(layer, nn.Linear(16, 16))


# --- Vision Transformer ---------------------------------------------------------------------------

CONFIG = dict(image_size=32, patch_size=8, dim=32, depth=2, heads=4, mlp_dim=64, num_classes=10)


def torchvision_twin(ours: VisionTransformer) -> torchvision.models.VisionTransformer:
    """torchvision's ViT with the same configuration, and with our weights copied into it."""
    cfg = CONFIG
    theirs = torchvision.models.VisionTransformer(cfg["image_size"], cfg["patch_size"], num_layers=cfg["depth"],
                                                  num_heads=cfg["heads"], hidden_dim=cfg["dim"],
                                                  mlp_dim=cfg["mlp_dim"], num_classes=cfg["num_classes"])
    with torch.no_grad():
        theirs.conv_proj.load_state_dict(ours.patch_embed.state_dict())
        theirs.class_token.copy_(ours.cls_token)
        theirs.encoder.pos_embedding.copy_(ours.pos_embedding)
        for block, layer in zip(ours.blocks, theirs.encoder.layers):
            layer.ln_1.load_state_dict(block.norm1.state_dict())
            layer.ln_2.load_state_dict(block.norm2.state_dict())
            attn = block.attn
            layer.self_attention.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight,
                                                                 attn.v_proj.weight]))  # (3 dim, dim)
            layer.self_attention.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
            layer.self_attention.out_proj.load_state_dict(attn.out_proj.state_dict())
            layer.mlp[0].load_state_dict(block.mlp[0].state_dict())
            layer.mlp[3].load_state_dict(block.mlp[2].state_dict())
        theirs.encoder.ln.load_state_dict(ours.norm.state_dict())
        theirs.heads.head.load_state_dict(ours.classifier.state_dict())
    return theirs


def test_vit_equals_torchvision_vit_with_the_same_weights(same_function):
    torch.manual_seed(0)
    ours = VisionTransformer(**CONFIG)
    with torch.no_grad():   # non-trivial norms and biases, so that a swapped or skipped one shows
        for m in ours.modules():
            if isinstance(m, (nn.LayerNorm, nn.Linear, nn.Conv2d)):
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
        ours.cls_token.normal_()
    theirs = torchvision_twin(ours)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.eval()
    theirs.eval()
    same_function(ours, theirs, torch.randn(2, 3, 32, 32))


def test_patch_embedding_is_a_linear_map_of_the_flattened_patches():
    torch.manual_seed(0)
    vit = VisionTransformer(**CONFIG)
    x = torch.randn(2, 3, 32, 32)
    patches = F.unfold(x, kernel_size=8, stride=8).transpose(1, 2)                # (N, P, 3*8*8), row-major patches
    expected = patches @ vit.patch_embed.weight.flatten(1).T + vit.patch_embed.bias  # (N, P, dim)
    tokens = vit.embed(x)                                                         # (N, 1 + P, dim)
    torch.testing.assert_close(tokens[:, 1:], expected + vit.pos_embedding[:, 1:])
    torch.testing.assert_close(tokens[:, 0], (vit.cls_token + vit.pos_embedding[:, :1]).expand(2, 1, -1)[:, 0])


def test_vit_shapes_halves_gradients_and_attention_maps():
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=28, patch_size=7, dim=24, depth=3, heads=3, mlp_dim=48, num_classes=10,
                            channels=1, dropout=0.1)   # Fashion-MNIST: 16 patches of 7x7
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 9, 3])
    tokens = vit.features(x)
    assert tokens.shape == (4, 17, 24)
    logits = vit.head(tokens)
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    F.cross_entropy(logits, y).backward()
    for name, p in vit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name

    vit.eval()
    with torch.no_grad():
        tokens = vit.features(x)
        torch.testing.assert_close(vit(x), vit.head(tokens), atol=0, rtol=0)
        grid = vit.patch_grid(tokens)
        assert grid.shape == (4, 24, 4, 4)
        torch.testing.assert_close(grid[:, :, 1, 2], tokens[:, 1 + 1 * 4 + 2])   # patch (row 1, col 2)
        maps = vit.attention_maps(x)
        assert len(maps) == 3 and all(m.shape == (4, 3, 17, 17) for m in maps)
        torch.testing.assert_close(maps[0].sum(-1), torch.ones(4, 3, 17))
        # The first map is the first block's attention on the embedded tokens.
        _, first = vit.blocks[0].attn(vit.blocks[0].norm1(vit.embed(x)), return_attention=True)
        torch.testing.assert_close(maps[0], first)


def test_transformer_block_is_pre_norm_residual():
    torch.manual_seed(0)
    block = TransformerBlock(16, 4, 32).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        h = x + block.attn(block.norm1(x))
        torch.testing.assert_close(block(x), h + block.mlp(block.norm2(h)))


def test_vit_errors():
    with pytest.raises(ValueError, match="must be a multiple of patch_size, got image_size=30 and patch_size=8"):
        VisionTransformer(30, 8, 32, 2, 4, 64, 10)
    with pytest.raises(ValueError, match="dim must be a multiple of heads"):
        VisionTransformer(32, 8, 30, 2, 4, 64, 10)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        VisionTransformer(32, 8, 32, 2, 4, 64, 0)
    vit = VisionTransformer(**CONFIG)
    with pytest.raises(ValueError, match="expects 32x32 images .* got 32x40"):
        vit(torch.randn(1, 3, 32, 40))
    with pytest.raises(ValueError, match="at least 32x32 pixels, got 16x16"):
        vit(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"expects 3 input channels: x must be \(N, 3, H, W\)"):
        vit(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"tokens must be 3-D \(N, 1 \+ P, 32\)"):
        vit.head(torch.randn(2, 32))


# --- AG-CNN's hard-attention crop -------------------------------------------------------------------


def test_largest_region_box_of_a_known_mask():
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[1:3, 1:3] = True          # 4 pixels
    mask[4:7, 5:9] = True          # 12 pixels: the largest region, rows 4-6, columns 5-8
    mask[7, 9] = True              # touches it diagonally: 8-connected, so part of it (13 pixels)
    assert largest_region_box(mask).tolist() == [5, 4, 10, 8]   # (x0, y0, x1, y1), x1 and y1 exclusive
    mask[7, 9] = False
    assert largest_region_box(mask).tolist() == [5, 4, 9, 7]
    assert largest_region_box(torch.zeros(3, 5, dtype=torch.bool)).tolist() == [0, 0, 5, 3]  # empty: whole image


def test_attention_heatmap_is_the_normalised_channel_maximum_of_absolute_values():
    torch.manual_seed(0)
    features = torch.randn(2, 5, 4, 6)
    heat = attention_heatmap(features)
    expected = features.abs().amax(1)                                        # (N, h, w)
    expected = expected - expected.flatten(1).amin(1)[:, None, None]
    expected = expected / expected.flatten(1).amax(1)[:, None, None]
    torch.testing.assert_close(heat, expected)
    # a strongly negative response counts as much as a positive one (|f|), and a constant map gives zeros
    features = torch.zeros(1, 2, 3, 3)
    features[0, 1, 2, 0] = -4.0
    assert attention_heatmap(features)[0].argmax().item() == 2 * 3 + 0
    assert attention_heatmap(torch.ones(1, 2, 3, 3)).abs().max() == 0


def test_attention_crop_cuts_the_box_of_the_hot_region_and_resizes_it():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 16, 16)
    heat = torch.zeros(2, 16, 16)
    heat[0, 2:6, 9:15] = 1.0       # image 0: rows 2-5, columns 9-14
    heat[0, 12, 1] = 1.0           # a smaller hot spot elsewhere is ignored
    heat[1, 8:16, 0:4] = 0.9       # image 1: rows 8-15, columns 0-3
    crops, boxes = attention_crop(images, heat, threshold=0.7, size=(8, 8))
    assert boxes.tolist() == [[9, 2, 15, 6], [0, 8, 4, 16]]
    assert crops.shape == (2, 3, 8, 8)
    expected = F.interpolate(images[:1, :, 2:6, 9:15], size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(crops[:1], expected)
    # a coarse heat map is upsampled to the image first: one hot cell of a 4x4 map covers a 4x4 block
    coarse = torch.zeros(1, 4, 4)
    coarse[0, 1, 2] = 1.0
    _, box = attention_crop(images[:1], coarse, threshold=0.7)
    x0, y0, x1, y1 = box[0].tolist()
    assert 8 <= x0 < x1 <= 12 and 4 <= y0 < y1 <= 8


def test_attention_crop_errors():
    with pytest.raises(ValueError, match="the same number of images, got 2 and 1"):
        attention_crop(torch.zeros(2, 1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\), got 1.5"):
        attention_crop(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4), threshold=1.5)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        largest_region_box(torch.zeros(3, 3))


# --- local self-attention with relative position embeddings ------------------------------------------


def local_attention_reference(layer: LocalSelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """Plain stand-alone self-attention: every neighbourhood unfolded, the full (k*k, d) offset table written out."""
    n, _, h, w = x.shape
    k, p, heads, d = layer.kernel_size, layer.kernel_size // 2, layer.heads, layer.head_dim
    q = layer.query(x).view(n, heads, d, 1, h * w)                                   # (N, heads, d, 1, M)
    keys = F.unfold(layer.key(x), k, padding=p).view(n, heads, d, k * k, h * w)       # (N, heads, d, k*k, M)
    values = F.unfold(layer.value(x), k, padding=p).view(n, heads, d, k * k, h * w)
    inside = F.unfold(torch.ones(1, 1, h, w, dtype=x.dtype), k, padding=p).view(k * k, h * w) > 0
    # r[a * k + b] = [r_rows[a], r_cols[b]]: the embedding of the offset (a - p, b - p)
    r = torch.cat([layer.rel_rows[:, None].expand(k, k, d // 2),
                   layer.rel_cols[None, :].expand(k, k, d // 2)], dim=-1).reshape(k * k, d)
    logits = (q * keys).sum(2) + torch.einsum("nhdm,od->nhom", q[:, :, :, 0], r)     # (N, heads, k*k, M)
    weights = logits.masked_fill(~inside, float("-inf")).softmax(dim=2)
    return (weights[:, :, None] * values).sum(3).view(n, heads * d, h, w)


@pytest.mark.parametrize(("c_in", "c_out", "k", "heads", "size"), [(3, 8, 3, 1, (5, 6)), (4, 8, 5, 2, (4, 7)),
                                                                   (6, 12, 7, 3, (9, 5)), (2, 4, 3, 2, (1, 1)),
                                                                   (5, 16, 5, 4, (3, 8))])
def test_local_self_attention_matches_an_unfold_reference_values_and_gradients(c_in, c_out, k, heads, size):
    torch.manual_seed(c_in + k)
    ours = LocalSelfAttention2d(c_in, c_out, k, heads).double()
    x1 = torch.randn(2, c_in, *size, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y = ours(x1)
    expected = local_attention_reference(ours, x2)
    assert y.shape == (2, c_out, *size)
    torch.testing.assert_close(y, expected)
    w = torch.randn_like(y)
    grads = torch.autograd.grad((y * w).sum(), [x1, *ours.parameters()])
    expected_grads = torch.autograd.grad((expected * w).sum(), [x2, *ours.parameters()])
    for name, g, e in zip(["x", *(n for n, _ in ours.named_parameters())], grads, expected_grads):
        torch.testing.assert_close(g, e, msg=name)


def test_local_self_attention_gradcheck():
    torch.manual_seed(0)
    layer = LocalSelfAttention2d(2, 4, 3, 2).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_local_self_attention_offsets_point_the_right_way():
    # Keys silent, embeddings that favour the row offset +1 and the column offset 0: y[i, j] = v[i + 1, j].
    torch.manual_seed(0)
    layer = LocalSelfAttention2d(2, 2, 3)
    with torch.no_grad():
        layer.key.weight.zero_()
        layer.query.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0]])[:, :, None, None])  # q = (x_0, x_0)
        layer.value.weight.copy_(torch.eye(2)[:, :, None, None])
        layer.rel_rows.copy_(torch.tensor([[0.0], [0.0], [60.0]]))   # row offsets -1, 0, +1
        layer.rel_cols.copy_(torch.tensor([[0.0], [60.0], [0.0]]))   # column offsets -1, 0, +1
    x = torch.randn(1, 2, 4, 5)
    x[:, 0] = 1.0                                                     # every query = (1, 1)
    y = layer(x)
    # rows 0-2 read the pixel below; the last row, whose neighbour below is outside, splits its weight
    # between itself and the pixel above (logits 60 and 60)
    torch.testing.assert_close(y[0, :, :3], x[0, :, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(y[0, 1, 3], (x[0, 1, 2] + x[0, 1, 3]) / 2, atol=1e-5, rtol=0)


def test_local_self_attention_needs_fewer_parameters_than_a_convolution():
    layer = LocalSelfAttention2d(64, 64, kernel_size=7, heads=8)
    # three 1x1 projections, and k embeddings of d / 2 for the rows and for the columns (d = 64 / 8)
    assert sum(p.numel() for p in layer.parameters()) == 3 * 64 * 64 + 2 * 7 * 4 == 12_344
    assert sum(p.numel() for p in nn.Conv2d(64, 64, 7, bias=False).parameters()) == 49 * 64 * 64


def test_local_self_attention_errors():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        LocalSelfAttention2d(4, 8, 4)
    with pytest.raises(ValueError, match="out_channels / heads must be an even integer"):
        LocalSelfAttention2d(4, 12, 3, heads=4)
    layer = LocalSelfAttention2d(4, 8, 3)
    with pytest.raises(ValueError, match=r"expects x of shape \(N, 4, H, W\), got \(1, 3, 5, 5\)"):
        layer(torch.randn(1, 3, 5, 5))


# --- SE gates per class (chapter 11's class-specificity measure) -------------------------------------


def test_se_gates_are_each_blocks_sigmoid_output_in_order():
    torch.manual_seed(0)
    model = ResNet(SEBasicBlock, (1, 1), num_classes=3, widths=(16, 32), in_channels=1, small_input=True).train()
    x = torch.randn(5, 1, 12, 12)
    gates = se_gates(model, x, batch_size=2)
    assert model.training                                             # the mode is restored
    assert [tuple(g.shape) for g in gates] == [(5, 16), (5, 32)]
    model.eval()
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        first = model.layer1[0]
        expected = first.se.gates(BasicBlock.branch(first, h)).flatten(1)  # (N, 16)
        torch.testing.assert_close(gates[0], expected)
        expected = model.layer2[0].se.gates(BasicBlock.branch(model.layer2[0], model.layer1(h))).flatten(1)
        torch.testing.assert_close(gates[1], expected)
    with pytest.raises(ValueError, match="has no SEBlock"):
        se_gates(nn.Sequential(nn.Conv2d(1, 2, 3)), x)


def test_class_specificity_is_the_between_class_share_of_the_variance():
    torch.manual_seed(0)
    gates, labels = torch.rand(12, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 2, 1])
    # by hand: sum over channels and classes of n_k (m_kc - m_c)^2, over the total sum of squares
    m = gates.mean(0)
    between = sum((labels == k).sum() * ((gates[labels == k].mean(0) - m) ** 2).sum() for k in range(3))
    total = ((gates - m) ** 2).sum()
    assert class_specificity(gates, labels) == pytest.approx(float(between / total), rel=1e-6)
    # gates that are a function of the class: 1; the same gates for every class: 0; labels renamed: unchanged
    assert class_specificity(torch.eye(3)[labels], labels) == pytest.approx(1.0)
    assert class_specificity(torch.ones(12, 3), labels) == 0.0
    assert class_specificity(gates, 7 * labels + 3) == pytest.approx(class_specificity(gates, labels))
    with pytest.raises(ValueError, match="same number of images, got 12 and 11"):
        class_specificity(gates, labels[:11])
