"""MaskedVisionTransformer: mmpretrain's ViT, DINO's initialisation, iBOT's patch masking,
DINO's position-embedding interpolation as an option."""
import math

import pytest
import torch
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

import hirl_mm  # noqa: F401
from hirl_mm.registry import MODELS

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _vit(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='MaskedVisionTransformer', arch=ARCH, img_size=16, patch_size=4)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    return model


def test_same_parameter_names_as_mmpretrain_vit():
    plain = VisionTransformer(arch=ARCH, img_size=16, patch_size=4)
    assert set(_vit().state_dict()) == set(plain.state_dict())
    assert set(_vit(use_mask_token=True).state_dict()) == set(plain.state_dict()) | {
        'mask_token'}


def test_dino_initialisation():
    model = _vit()
    assert model.cls_token.abs().sum() > 0  # truncated normal, not mmpretrain's zeros
    qkv = model.layers[0].attn.qkv
    assert qkv.weight.std().item() == pytest.approx(0.02, rel=0.25)
    assert torch.all(qkv.bias == 0)
    assert torch.all(model.ln1.weight == 1) and torch.all(model.ln1.bias == 0)


def test_unmasked_forward_equals_mmpretrain_vit():
    model = _vit(out_type='raw')
    plain = VisionTransformer(arch=ARCH, img_size=16, patch_size=4, out_type='raw')
    plain.eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model(x)[0], plain(x)[0])
    # Smaller (local) crops interpolate the position embedding.
    assert model(torch.randn(2, 3, 8, 8))[0].shape == (2, 1 + 4, 32)


def test_mask_replaces_exactly_the_masked_patch_embeddings():
    model = _vit(use_mask_token=True, out_type='raw')
    with torch.no_grad():
        model.mask_token.fill_(3.)
    x = torch.randn(1, 3, 16, 16)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    captured = {}
    model.pre_norm.register_forward_hook(lambda m, i, o: captured.setdefault('x', i[0]))
    model(x, mask=mask)
    tokens = captured['x'][0, 1:]  # after position embedding, without [CLS]
    pos = model.pos_embed[0, 1:]
    patches = model.patch_embed(x)[0][0]
    masked_index = 1 * 4 + 2
    torch.testing.assert_close(tokens[masked_index], pos[masked_index] + 3.)
    others = [i for i in range(16) if i != masked_index]
    torch.testing.assert_close(tokens[others], patches[others] + pos[others])


def test_mask_errors_name_the_fix():
    with pytest.raises(ValueError, match='use_mask_token=True'):
        _vit()(torch.randn(1, 3, 16, 16), mask=torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='patch size'):
        _vit(use_mask_token=True)(torch.randn(1, 3, 16, 16),
                                  mask=torch.zeros(1, 3, 3, dtype=torch.bool))


# ---- position-embedding interpolation for other crop sizes (local crops) ----

def _dino_interpolate_pos_encoding(pos_embed, patch_size, w, h):
    """facebookresearch/dino ``VisionTransformer.interpolate_pos_encoding`` (also the HIRL
    authors' ``hirl/backbones/vision_transformer.py``), written out independently; ``w, h``
    are DINO's names for ``x.shape[-2:]`` (``B, nc, w, h = x.shape``)."""
    N = pos_embed.shape[1] - 1
    w0, h0 = w // patch_size, h // patch_size
    if w0 * h0 == N and w == h:
        return pos_embed
    dim = pos_embed.shape[-1]
    w0, h0 = w0 + 0.1, h0 + 0.1
    patch_pos_embed = torch.nn.functional.interpolate(
        pos_embed[:, 1:].reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(
            0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode='bicubic')
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((pos_embed[:, :1], patch_pos_embed), dim=1)


def _added_pos_embed(model, x):
    """What the forward pass added to the [CLS] token and the patch embeddings."""
    captured = {}
    handle = model.pre_norm.register_forward_hook(
        lambda m, i, o: captured.setdefault('x', i[0]))
    with torch.no_grad():
        model(x)
        patches = model.patch_embed(x)[0]
    handle.remove()
    tokens = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), patches), dim=1)
    return (captured['x'] - tokens)[:1]


def _vit_14x14(**kwargs):
    """A ViT whose 56-pixel images are a 14 x 14 grid of 4-pixel patches (as 224 / 16)."""
    return _vit(img_size=56, out_type='raw', **kwargs)


@pytest.mark.parametrize('height,width', [(24, 24), (24, 32), (32, 24), (40, 40)])
def test_scale_factor_mode_is_dinos_interpolation(height, width):
    model = _vit_14x14(pos_embed_interpolation='scale_factor')
    expected = _dino_interpolate_pos_encoding(model.pos_embed.detach(), 4, height, width)
    assert expected.shape[1] == 1 + (height // 4) * (width // 4)
    got = model.interpolated_pos_embed((height // 4, width // 4)).detach()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    x = torch.randn(2, 3, height, width)
    torch.testing.assert_close(_added_pos_embed(model, x), expected, rtol=1e-6, atol=1e-6)


def test_scale_factor_mode_differs_from_resizing_to_the_size():
    dino = _vit_14x14(pos_embed_interpolation='scale_factor')
    resize = _vit_14x14()
    assert resize.pos_embed_interpolation == 'size'  # the default keeps mmpretrain's way
    torch.testing.assert_close(dino.pos_embed, resize.pos_embed)
    # 96-pixel crops of a ViT-B/16 at 224: a 6 x 6 grid from 14 x 14 (ratio 3 / 7).
    by_scale = dino.interpolated_pos_embed((6, 6)).detach()
    by_size = resize.interpolated_pos_embed((6, 6)).detach()
    expected_size = resize_pos_embed(resize.pos_embed.detach(), (14, 14), (6, 6))
    torch.testing.assert_close(by_size, expected_size, rtol=0, atol=0)
    assert by_scale.shape == by_size.shape == (1, 1 + 36, 32)
    torch.testing.assert_close(by_scale[:, 0], by_size[:, 0])  # [CLS] untouched
    assert (by_scale[:, 1:] - by_size[:, 1:]).abs().max() > 1e-3


@pytest.mark.parametrize('mode', ['size', 'scale_factor'])
def test_equal_grid_keeps_the_embedding(mode):
    model = _vit_14x14(pos_embed_interpolation=mode)
    assert model.interpolated_pos_embed((14, 14)) is model.pos_embed
    torch.testing.assert_close(_added_pos_embed(model, torch.randn(1, 3, 56, 56)),
                               model.pos_embed.detach(), rtol=1e-6, atol=1e-6)


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="'size', 'scale_factor'"):
        _vit(pos_embed_interpolation='scale')
