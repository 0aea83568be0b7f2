from .cpu_data_parallel import CPUDistributedDataParallel
from .hooks import *  # noqa: F401,F403

__all__ = ['CPUDistributedDataParallel']
