"""The checks of ``tools/analysis_tools/gpu_check.py``, one concern a module.

* :mod:`.report`: running a check in isolation (ok / failed / skipped), the machine
  description, ``report.json`` and ``report.md``.
* :mod:`.synthetic_images`: an in-memory data set of random images, registered at run time.
* :mod:`.probes`: hooks that time every training step and record what the clustering
  hook did (feature source, prototypes after a resume).
* :mod:`.training`: the real configs on synthetic data (baseline vs HIRL, the clustering
  hook per k-means back end, resume).
* :mod:`.clustering`: k-means at ImageNet size per precision, the sharded back end in a
  process group.
"""
