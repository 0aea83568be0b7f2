"""tools/model_converters/hirl_reference.py: the HIRL authors' checkpoints -> mmpretrain.

The reference layouts are built here: torchvision's ResNet-50 under ``model.backbone.``
(HIRL-MoCo v2 / SimSiam / SwAV) and a DINO-layout ViT (the reference's
``hirl.backbones.vision_transformer``, which DINO / iBOT / MoCo v3 use) under
``module.backbone.``; the converted checkpoints must load exactly into mmpretrain's
backbones and compute the same outputs.
"""
import argparse
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision
from mmpretrain.models import ResNet, VisionTransformer
from torch import nn

TOOL = Path(__file__).parents[2] / 'tools' / 'model_converters' / 'hirl_reference.py'
DIM, HEADS, DEPTH, IMG, PATCH = 32, 2, 2, 32, 8


def _tool():
    spec = importlib.util.spec_from_file_location('hirl_reference_converter', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (DIM // HEADS) ** -0.5).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, DIM))


class _Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(DIM, eps=1e-6), nn.LayerNorm(DIM, eps=1e-6)
        self.attn, self.mlp = _Attention(), _Mlp()

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, DIM, PATCH, PATCH)


class DinoLayoutViT(nn.Module):
    """DINO's VisionTransformer forward ([CLS] after the final norm) in its key layout."""

    def __init__(self):
        super().__init__()
        self.patch_embed = _PatchEmbed()
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM))
        self.pos_embed = nn.Parameter(torch.randn(1, (IMG // PATCH) ** 2 + 1, DIM))
        self.blocks = nn.ModuleList(_Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.head = nn.Identity()

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def _randomize(module: nn.Module) -> nn.Module:
    """Non-trivial weights and BN statistics, so that a mix-up shows in the outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) * 0.2 + 0.9 if tensor.ndim == 1
                             else torch.randn_like(tensor) * 0.05)
    return module.eval()


def test_resnet50_under_hirl_prefix_loads_exactly_and_matches(tmp_path):
    reference = _randomize(torchvision.models.resnet50())
    state = {f'module.model.backbone.{k}': v for k, v in reference.state_dict().items()}
    state['module.model.projector.0.weight'] = torch.zeros(2, 2)  # not the backbone
    # The reference also saves its argparse options.
    torch.save({'model': state, 'epoch': 200, 'args': argparse.Namespace(arch='resnet50')},
               tmp_path / 'hirl_mocov2.pth')
    out = tmp_path / 'converted.pth'
    assert _tool().main([str(tmp_path / 'hirl_mocov2.pth'), str(out)]) == 0

    converted = torch.load(out, weights_only=True)['state_dict']
    assert all(k.startswith('backbone.') for k in converted)
    backbone = ResNet(depth=50)
    backbone.eval()  # mmpretrain's ResNet.train() does not return the module
    result = backbone.load_state_dict({k[len('backbone.'):]: v
                                       for k, v in converted.items()}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    image = torch.randn(2, 3, 64, 64)
    reference.fc = nn.Identity()
    with torch.no_grad():
        expected = reference(image)
        got = backbone(image)[-1].mean(dim=(2, 3))  # global average pool, as torchvision
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('layout', ['hirl', 'dino_teacher', 'bare'])
def test_dino_layout_vit_loads_exactly_and_matches(layout, tmp_path):
    reference = _randomize(DinoLayoutViT())
    plain = dict(reference.state_dict(), masked_embed=torch.zeros(DIM))  # iBOT's mask token
    content = {
        'hirl': {'model': {f'module.backbone.{k}': v for k, v in plain.items()}},
        'dino_teacher': {'teacher': {f'backbone.{k}': v for k, v in plain.items()},
                         'student': {}},
        'bare': plain,
    }[layout]
    torch.save(content, tmp_path / 'vit.pth')
    out = tmp_path / 'converted.pth'
    assert _tool().main([str(tmp_path / 'vit.pth'), str(out)]) == 0

    converted = torch.load(out, weights_only=True)['state_dict']
    backbone = VisionTransformer(
        arch=dict(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS,
                  feedforward_channels=4 * DIM),
        img_size=IMG, patch_size=PATCH, out_type='cls_token')
    backbone.eval()
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()},
                             strict=True)
    image = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        assert torch.allclose(backbone(image)[-1], reference(image), atol=1e-5)


def test_unknown_layouts_are_refused_with_the_fix(tmp_path, capsys):
    tool = _tool()
    torch.save({'model': {'encoder.weight': torch.zeros(1)}}, tmp_path / 'x.pth')
    assert tool.main([str(tmp_path / 'x.pth'), str(tmp_path / 'o.pth')]) == 2
    assert 'Pass --prefix' in capsys.readouterr().err
    layer_scale = {'cls_token': torch.zeros(1, 1, 2), 'blocks.0.gamma_1': torch.zeros(2)}
    with pytest.raises(ValueError, match=r"blocks\.0\.gamma_1"):
        tool.convert_reference_state(layer_scale)
    # An explicit prefix is the only one tried.
    with pytest.raises(KeyError, match="'teacher.'"):
        tool.convert_reference_state({'backbone.cls_token': torch.zeros(1)}, 'teacher.')
