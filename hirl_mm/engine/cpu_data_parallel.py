"""DistributedDataParallel for several CPU processes (gloo): no device ids, no SyncBN."""
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS as ROOT_MODEL_WRAPPERS
from torch import nn


# Registered in mmengine's root registry so that configs of any scope (mmpretrain, mmdet,
# mmseg) resolve it: lookups go from a scope's registry up to the root, never sideways.
@ROOT_MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for CPU processes, as used by tools/ without a GPU.

    torch's SyncBatchNorm only runs on GPU, and mmengine reverts it to BatchNorm only when
    training is not distributed; on CPU it is reverted here for distributed runs too, so
    the OpenMMLab configs (which use SyncBN) run as several gloo processes for small data.
    Each process then normalises with its own batch statistics.

    Args:
        module (nn.Module): The model.
        **kwargs: Passed to ``MMDistributedDataParallel`` (``device_ids`` must be None).
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        if any(isinstance(m, nn.SyncBatchNorm) for m in module.modules()):
            print_log('CPU distributed training: SyncBatchNorm layers are reverted to '
                      'BatchNorm (per-process statistics).', logger='current')
            module = revert_sync_batchnorm(module)
        kwargs['device_ids'] = None
        super().__init__(module=module, **kwargs)
