# HIRL-BEiT, ViT-B/16, 400 epochs on ImageNet-1k, as the reference ran it (hirl-team/HIRL
# configs/pretrain/hirl/hirl_beit_base_400eps.yaml): K = 30000 / 10000 / 1000, 100 negative
# paths, 2-layer semantic heads, 40 warm-up epochs, train_emb 'vit_cls'.
# Baseline: configs/baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py
# (mmpretrain's config at the reference's 400 epochs; its header lists where it differs
# from the reference), inherited unchanged.
#
# Embedding: that yaml builds `model: beit_base` (BEiTRunner calls it without arguments),
# i.e. hirl/models/beit.py's BEiT with its default num_mlp_layer=0, whose "projector" is
# nn.Identity; the yaml's `num_mlp_layer: 2` sits under `pipeline:` and sizes HIRL's
# semantic heads. Its `inst_cls_emb` is therefore the ViT's final-norm [CLS] token (768-d)
# of the masked first image during training, and of the unmasked eval-transform image for
# clustering (BEiT has no momentum encoder): in hirl_mm, embedding='backbone'.
# The reference code's other model, `beit_base_with_proj` (a 2-layer MLP on every token
# between the ViT and the masked-token classifier, HIRL on its [CLS] output), is not what
# its released run used; `beit_projector` below builds it (BEiTTokenProjector +
# BEiTV1ProjectedHead, SyncBN as the reference's convert_sync_batchnorm): in a config that
# inherits this one, `model = dict(**_base_.beit_projector)`.
_base_ = ['../baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py',
          '_base_/hirl_vit-b16.py']
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    type='HIRL',
    algorithm='BEiT',
    **dict(_base_.hirl_model, num_clusters=[30000, 10000, 1000], embedding='backbone'))

# The heads' group at the weight decay the authors' AdamW is built with (0.05, constant,
# on the heads' biases and norms too).
optim_wrapper = dict(
    constructor=_base_.hirl_head_group.constructor,
    paramwise_cfg=dict(fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.05))))

beit_projector = dict(
    embedding='neck',
    neck=dict(_delete_=True,  # replaces the base's neck=None when merged
              type='BEiTTokenProjector', in_channels=768, num_layers=2,
              norm_cfg=dict(type='SyncBN')),
    head=dict(type='BEiTV1ProjectedHead'))

# The reference's eval transform (resize 256, center-crop 224), then the image twice:
# BEiT's TwoNormDataPreprocessor normalises two images per sample (the second for the
# tokenizer, unused by the embedding).
custom_hooks = [dict(
    _base_.hirl_clustering_hook,
    extract_pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
        dict(type='CenterCrop', crop_size=224),
        dict(type='MultiView', num_views=2, transforms=[[]]),
        dict(type='PackInputs'),
    ])]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
