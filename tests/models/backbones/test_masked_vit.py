"""MaskedVisionTransformer: mmpretrain's ViT, DINO's initialisation, iBOT's patch masking."""
import pytest
import torch
from mmpretrain.models import VisionTransformer

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
