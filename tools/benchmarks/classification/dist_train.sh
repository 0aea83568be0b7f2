#!/usr/bin/env bash
# Linear probe, fine-tuning, semi-supervised fine-tuning or Places205 fine-tuning of a
# pre-trained backbone (configs/benchmarks/classification/):
#   tools/benchmarks/classification/dist_train.sh CONFIG PRETRAIN GPUS [tools/train.py args]
# PRETRAIN's backbone.* weights go into the modules the config marks with
# init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.'), and the run stops
# unless they fit exactly. See tools/benchmarks/dist_train.sh.
exec bash "$(dirname "$0")/../dist_train.sh" "$@"
