"""SAGAN self-attention, multi-head self-attention and the Vision Transformer.

The oracles: ``F.scaled_dot_product_attention`` for the SAGAN layer, ``nn.MultiheadAttention`` for
our multi-head attention (same weights, same outputs, attention weights and gradients), and
torchvision's ``VisionTransformer`` for the whole ViT (its weights copied into ours).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from companion.models.attention import SelfAttention2d
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
