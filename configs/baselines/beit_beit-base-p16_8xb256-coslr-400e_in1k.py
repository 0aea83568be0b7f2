# Plain BEiT (v1) baseline for configs/hirl/beit_vit-b16.py: mmpretrain's ViT-B/16 config
# with the HIRL paper's schedule, 400 epochs instead of mmpretrain's 300.
#
# Against the reference baseline (hirl-team/HIRL configs/pretrain/baseline/
# beit_base_400eps.yaml, BEiTRunner, hirl/models/beit.py `beit_base`) mmpretrain's config
# has:
#   same:  batch 2048 (8 GPUs x 256 here, 64 per GPU there: 2048 in the reference's README),
#          AdamW lr 1.5e-3 (not scaled with the batch: BEiTRunner's own optimizer builder),
#          betas (0.9, 0.999), weight decay 0.05 constant, none on biases / norms / layer
#          scale / cls token / position embedding; 10 linear warm-up epochs, cosine to 1e-5
#          (per iteration); gradient norm clipped at 3.0; ViT-B/16 with drop path 0.1, layer
#          scale 0.1, shared relative position bias, no absolute position embedding, BEiT's
#          rescaled init; BEiT v1 head (linear classifier over 8192 tokens on the masked
#          patches, cross-entropy); DALL-E tokenizer on the 112-px second image (lanczos,
#          pixels mapped to [0.1, 0.9]); 224-px crops scale (0.08, 1) bicubic, colour jitter
#          0.4 / 0.4 / 0.4 / 0, flip; block-wise masks of 75 of 196 patches (>= 16 per
#          block). The reference's ViT has a k bias that mmpretrain's BEiT leaves out (q
#          and v biases only): a bias on the keys shifts every logit of a query equally
#          and does not change the attention.
#   differs, set here:  epochs: 300 -> 400 (the warm-up stays 10, the cosine spans 390);
#          fp32 (the reference: use_fp16: False; mmpretrain runs AMP); the patch
#          embedding's convolution keeps PyTorch's default init (the reference's init
#          covers Linear and LayerNorm layers only; mmpretrain draws it truncated-normal).
# The DALL-E tokenizer's weights come from mmpretrain's URL (init_cfg Pretrained,
# download.openmmlab.com/mmselfsup/1.x/target_generator_ckpt/dalle_encoder.pth, the OpenAI
# DALL-E encoder the reference also loads); it is fetched at the start of training and
# cannot be downloaded on machines without internet access (point `checkpoint` at a local
# copy there).
_base_ = 'mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py'

max_epochs = 400
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)

model = dict(backbone=dict(init_cfg=[
    dict(type='TruncNormal', std=0.02, layer='Linear'),
    dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
]))
# fp32, as the reference ran BEiT and HIRL-BEiT.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=_base_.optim_wrapper.optimizer,
    clip_grad=_base_.optim_wrapper.clip_grad,
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg)
