from .atomic_checkpoint_hook import AtomicCheckpointHook
from .collapse_check import RepresentationCollapseError
from .epoch_timer_hook import EpochTimerHook
from .freeze_last_layer_hook import FreezeLastLayerHook
from .hierarchical_clustering_hook import (IMAGENET_EXTRACT_PIPELINE,
                                           HierarchicalClusteringHook)
from .hierarchy_monitor_hook import HierarchyMonitorHook
from .image_check_hook import ImageCheckHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .per_param_grad_clip_hook import PerParamGradClipHook
from .schedule_checks import ScheduleCheckError
from .teacher_temp_warmup_hook import TeacherTempWarmupHook

__all__ = ['EpochTimerHook', 'HierarchicalClusteringHook', 'IMAGENET_EXTRACT_PIPELINE', 'FreezeLastLayerHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'PerParamGradClipHook',
           'TeacherTempWarmupHook', 'HierarchyMonitorHook', 'AtomicCheckpointHook',
           'ImageCheckHook', 'RepresentationCollapseError', 'ScheduleCheckError']
