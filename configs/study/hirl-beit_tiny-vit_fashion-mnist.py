# Fashion-MNIST study, HIRL-BEiT: the BEiT baseline (a 4-block ViT) plus the same HIRL
# settings as the other studies (configs/study/_base_/hirl_fashion-mnist.py), on the
# reference's HIRL-BEiT embedding (configs/hirl/beit_vit-b16.py): the final-norm [CLS] token
# of the masked first image during training, of the unmasked image for clustering (64-d).
_base_ = ['./beit_tiny-vit_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

model = dict(type='HIRL', algorithm='BEiT', **dict(_base_.hirl_model, embedding='backbone'))

# The heads' own group at the decay BEiT's AdamW is built with (0.05, constant, biases too).
optim_wrapper = dict(_base_.hirl_vit_head_group, paramwise_cfg=dict(
    fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.05))))

# The projector variant (the reference code's `beit_base_with_proj`, see
# configs/hirl/beit_vit-b16.py): `model = dict(**_base_.beit_projector)` in a child config.
beit_projector = dict(
    embedding='neck',
    neck=dict(_delete_=True,  # replaces the base's neck=None when merged
              type='BEiTTokenProjector', in_channels=_base_.embed_dims, num_layers=2),
    head=dict(type='BEiTV1ProjectedHead'))

# The images twice: BEiT's TwoNormDataPreprocessor normalises two images per sample.
custom_hooks = [dict(
    _base_.hirl_clustering_hook,
    extract_pipeline=[dict(type='MultiView', num_views=2, transforms=[[]]),
                      dict(type='PackInputs')])]
