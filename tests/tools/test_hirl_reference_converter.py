"""tools/model_converters/hirl_reference.py: the HIRL authors' checkpoints -> mmpretrain.

Each test saves a checkpoint in one of the authors' layouts (hirl-team/HIRL: what its
runners save, ``{'model': DDP state dict, 'args': ...}``), converts it with the tool, builds
the mmpretrain backbone from the config the tool records, loads the result strictly and
compares its output with the authors' forward on the same input. The authors' ViT is
re-implemented minimally below (``AuthorsViT``, the forward of their
``hirl.backbones.vision_transformer.VisionTransformer`` in its key layout, with the options
their DINO / iBOT / MoCo v3 / BEiT models and mean-pooled fine-tuning use); their ResNets
are torchvision's.
"""
import argparse
import importlib.util
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch
import torchvision
from mmpretrain.models import BEiTViT
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from hirl_mm.utils.beit_backbone import beit_finetune_state

TOOL = Path(__file__).parents[2] / 'tools' / 'model_converters' / 'hirl_reference.py'
# Heads 64 wide, as the authors' ViTs (the converter infers the head count from that).
DIM, HEADS, DEPTH, IMG, PATCH = 128, 2, 2, 32, 8
GRID = IMG // PATCH


def _tool():
    spec = importlib.util.spec_from_file_location('hirl_reference_converter', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _relative_position_index(size: int) -> Tensor:
    """BEiT's index into the shared table: 2-d offsets of patch pairs, then 3 [CLS] rows."""
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    rows, cols = rows.flatten(), cols.flatten()
    offset = ((rows[:, None] - rows[None] + size - 1) * (2 * size - 1)
              + cols[:, None] - cols[None] + size - 1)
    table_rows = (2 * size - 1) ** 2 + 3
    index = torch.full((size * size + 1, size * size + 1), table_rows - 3)  # [CLS] -> patch
    index[1:, 1:] = offset
    index[1:, 0] = table_rows - 2  # patch -> [CLS]
    index[0, 0] = table_rows - 1
    return index


class _Block(nn.Module):
    """One pre-norm block: ``x + g1 * attn(norm1(x))``, ``x + g2 * mlp(norm2(x))``."""

    def __init__(self, layer_scale: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(DIM, eps=1e-6), nn.LayerNorm(DIM, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(DIM, 3 * DIM), nn.Linear(DIM, DIM)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(DIM, 4 * DIM), nn.Linear(4 * DIM, DIM)
        if layer_scale:
            self.gamma_1, self.gamma_2 = nn.Parameter(torch.ones(DIM)), nn.Parameter(
                torch.ones(DIM))

    def forward(self, x: Tensor, bias: Optional[Tensor]) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).reshape(b, n, 3, HEADS, -1).unbind(2)
        logits = torch.einsum('bqhd,bkhd->bhqk', q, k) * (DIM // HEADS) ** -0.5
        if bias is not None:
            logits = logits + bias
        y = torch.einsum('bhqk,bkhd->bqhd', logits.softmax(-1), v).reshape(b, n, DIM)
        y = self.attn.proj(y)
        x = x + (self.gamma_1 * y if hasattr(self, 'gamma_1') else y)
        y = self.mlp.fc2(nn.functional.gelu(self.mlp.fc1(self.norm2(x))))
        return x + (self.gamma_2 * y if hasattr(self, 'gamma_2') else y)


class AuthorsViT(nn.Module):
    """The authors' ViT forward in their key layout.

    ``beit``: BEiT's options (layer scale, a relative position bias shared by all blocks,
    no absolute position embedding, ``masked_embed``). ``mean_pool``: ``fc_norm`` on the
    mean patch token instead of ``norm``'s [CLS] token.
    """

    def __init__(self, beit: bool = False, mean_pool: bool = False):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, DIM, PATCH, PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, DIM))
        if beit:
            self.rel_pos_bias = nn.Module()
            self.rel_pos_bias.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * GRID - 1) ** 2 + 3, HEADS))
            self.rel_pos_bias.register_buffer('relative_position_index',
                                              _relative_position_index(GRID))
            self.masked_embed = nn.Parameter(torch.zeros(1, DIM))
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, GRID * GRID + 1, DIM))
        self.blocks = nn.ModuleList(_Block(beit) for _ in range(DEPTH))
        if mean_pool:
            self.fc_norm = nn.LayerNorm(DIM, eps=1e-6)
        else:
            self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.head = nn.Linear(DIM, 7)  # a pre-training / classification head: dropped

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        bias = None
        if hasattr(self, 'rel_pos_bias'):
            table = self.rel_pos_bias.relative_position_bias_table
            bias = table[self.rel_pos_bias.relative_position_index].permute(2, 0, 1)
        else:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x, bias)
        if hasattr(self, 'fc_norm'):
            return self.fc_norm(x[:, 1:].mean(1))
        return self.norm(x)[:, 0]


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights and BN statistics, so that a mix-up shows in the outputs."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) * 0.2 + 0.9 if tensor.ndim == 1
                             else torch.randn_like(tensor) * 0.05)
            if name.endswith('relative_position_bias_table'):  # large enough to matter
                tensor.mul_(20)
    return module.eval()


def _prefixed(module: nn.Module, prefix: str) -> Dict[str, Tensor]:
    return {f'{prefix}{k}': v for k, v in module.state_dict().items()}


def _convert(tmp_path: Path, content: dict, *extra: str):
    """Save ``content``, convert it; the loaded backbone built from the recorded config."""
    torch.save(content, tmp_path / 'reference.pth')
    out = tmp_path / 'converted.pth'
    assert _tool().main([str(tmp_path / 'reference.pth'), str(out), *extra]) == 0
    converted = torch.load(out, weights_only=True)
    state, config = converted['state_dict'], converted['meta']['backbone']
    backbone = MODELS.build(config)
    backbone.eval()  # mmpretrain's backbones' train() does not return the module
    result = backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()},
                                      strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return backbone, config, state


def _assert_same_output(backbone: nn.Module, reference: nn.Module) -> None:
    image = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        assert torch.allclose(backbone(image)[-1], reference(image), atol=1e-5)


def test_dino_teacher_under_hirl_prefix(tmp_path, capsys):
    # HIRL-DINO / HIRL-iBOT: backbone = the teacher's (a duplicate of teacher.backbone).
    teacher = _randomize(AuthorsViT())
    student = _randomize(AuthorsViT(), seed=1)
    state = {**_prefixed(teacher, 'module.model.backbone.'),
             **_prefixed(teacher, 'module.model.teacher.backbone.'),
             **_prefixed(student, 'module.model.student.backbone.'),
             'module.model.backbone.masked_embed': torch.zeros(1, DIM),  # iBOT's
             'module.model.center': torch.zeros(1, 8),
             'module.projections.0.weight': torch.zeros(DIM, DIM)}
    backbone, config, _ = _convert(tmp_path, {'model': state, 'epoch': 400,
                                              'args': argparse.Namespace(arch='vit_base')})
    assert config['type'] == 'VisionTransformer' and config['out_type'] == 'cls_token'
    assert config['final_norm'] is True and config['img_size'] == IMG
    _assert_same_output(backbone, teacher)
    assert "backbone=dict(type='VisionTransformer'" in capsys.readouterr().out


def test_mocov3_query_encoder_without_its_projector(tmp_path):
    # MoCo v3: backbone = encoder_q, whose head is the BN-MLP projector (dropped).
    query = _randomize(AuthorsViT())
    query.head = nn.Sequential(nn.Linear(DIM, 16), nn.BatchNorm1d(16), nn.ReLU(),
                               nn.Linear(16, 8))
    key = _randomize(AuthorsViT(), seed=1)
    state = {**_prefixed(query, 'module.backbone.'), **_prefixed(query, 'module.encoder_q.'),
             **_prefixed(key, 'module.encoder_k.'),
             'module.predictor.0.weight': torch.zeros(8, 8)}
    backbone, _, _ = _convert(tmp_path, {'model': state})
    _assert_same_output(backbone, query)


@pytest.mark.parametrize('prefix', ['module.backbone.', 'module.model.backbone.'],
                         ids=['beit', 'hirl_beit'])
def test_beit_layer_scale_shared_bias_and_qkv_bias(prefix, tmp_path):
    vit = _randomize(AuthorsViT(beit=True))
    model = prefix[:-len('backbone.')]
    state = {**_prefixed(vit, prefix), **_prefixed(vit, f'{model}vit_model.'),
             f'{model}dvae_model.encoder.0.weight': torch.zeros(4, 3, 1, 1),
             'module.projections.0.0.weight': torch.zeros(DIM, DIM)}
    backbone, config, converted = _convert(tmp_path, {'model': state})
    assert isinstance(backbone, BEiTViT)
    assert config == dict(type='BEiTViT', arch=dict(
        embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS, feedforward_channels=4 * DIM),
        img_size=IMG, patch_size=PATCH, use_abs_pos_emb=False, use_rel_pos_bias=False,
        use_shared_rel_pos_bias=True, layer_scale_init_value=0.1, bias='qv_bias',
        final_norm=True, out_type='cls_token')
    # The k third of the qkv bias is dropped: softmax cancels it (it is not zero here).
    assert vit.blocks[0].attn.qkv.bias[DIM:2 * DIM].abs().min() > 0.5
    _assert_same_output(backbone, vit)
    # The index buffer carried over is the one mmpretrain builds (and rebuilds on resizing).
    assert torch.equal(MODELS.build(config).rel_pos_bias.relative_position_index,
                       _relative_position_index(GRID))

    # Passed through beit_backbone.py's conversion it fits the BEiT fine-tuning backbone.
    finetune = BEiTViT(arch=config['arch'], img_size=IMG, patch_size=PATCH,
                       use_rel_pos_bias=True, out_type='avg_featmap')
    finetune.load_state_dict({k[len('backbone.'):]: v
                              for k, v in beit_finetune_state(converted).items()},
                             strict=True)


@pytest.mark.parametrize('beit', [False, True], ids=['vit', 'beit'])
def test_mean_pooled_fc_norm_vit(beit, tmp_path):
    # A mean-pooled ViT (use_mean_pooling: fc_norm, no final norm), as a bare state dict.
    vit = _randomize(AuthorsViT(beit=beit, mean_pool=True))
    backbone, config, _ = _convert(tmp_path, vit.state_dict())
    assert config['out_type'] == 'avg_featmap' and config['final_norm'] is False
    _assert_same_output(backbone, vit)


def test_resnet_under_hirl_prefix(tmp_path):
    reference = _randomize(torchvision.models.resnet18())
    reference.fc = nn.Sequential(nn.Linear(512, 16), nn.ReLU(), nn.Linear(16, 8))  # MLP
    state = {**_prefixed(reference, 'module.model.backbone.'),
             'module.model.prototypes.weight': torch.zeros(3, 8)}
    backbone, config, _ = _convert(tmp_path, {'model': state})
    assert config == dict(type='ResNet', depth=18)
    reference.fc = nn.Identity()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        got = backbone(image)[-1].mean(dim=(2, 3))  # global average pool, as torchvision
        assert torch.allclose(got, reference(image), atol=1e-5, rtol=1e-4)


def test_resnet_with_an_unknown_key_is_refused(tmp_path, capsys):
    state = _prefixed(torchvision.models.resnet18(), 'backbone.')
    state['backbone.layer2.0.se.fc.weight'] = torch.zeros(2, 2)
    torch.save({'model': state}, tmp_path / 'x.pth')
    assert _tool().main([str(tmp_path / 'x.pth'), str(tmp_path / 'o.pth')]) == 2
    err = capsys.readouterr().err
    assert 'layer2.0.se.fc.weight' in err and '--prefix' in err
    assert not (tmp_path / 'o.pth').exists()


def test_no_backbone_and_unknown_vit_keys_are_refused(tmp_path, capsys):
    tool = _tool()
    torch.save({'model': {'encoder.weight': torch.zeros(1)}}, tmp_path / 'x.pth')
    assert tool.main([str(tmp_path / 'x.pth'), str(tmp_path / 'o.pth')]) == 2
    assert 'Pass --prefix' in capsys.readouterr().err
    state = dict(_prefixed(AuthorsViT(), 'backbone.'))
    state['backbone.blocks.0.attn.q_norm.weight'] = torch.ones(DIM)
    torch.save({'model': state}, tmp_path / 'y.pth')
    assert tool.main([str(tmp_path / 'y.pth'), str(tmp_path / 'o.pth')]) == 2
    assert 'blocks.0.attn.q_norm.weight' in capsys.readouterr().err
    # An explicit prefix is the only one tried.
    torch.save({'backbone.cls_token': torch.zeros(1)}, tmp_path / 'z.pth')
    assert tool.main([str(tmp_path / 'z.pth'), str(tmp_path / 'o.pth'),
                      '--prefix', 'teacher.']) == 2
    assert "'teacher.'" in capsys.readouterr().err
