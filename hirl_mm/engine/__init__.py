from .cpu_data_parallel import CPUDistributedDataParallel
from .hooks import *  # noqa: F401,F403
from .optimizers import FixedDecayGroupOptimWrapperConstructor
from .schedulers import CosineAnnealingWeightDecayExceptFixed

__all__ = ['CPUDistributedDataParallel', 'FixedDecayGroupOptimWrapperConstructor',
           'CosineAnnealingWeightDecayExceptFixed']
