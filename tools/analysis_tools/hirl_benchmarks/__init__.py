"""Measurement code of ``tools/analysis_tools/benchmark_hirl.py``, one section a module.

* :mod:`.measure`: peak memory, timing and the subprocess-per-variant runner.
* :mod:`.report`: shared table formatting.
* :mod:`.synthetic`: random normalised rows, hierarchies and paths.
* :mod:`.semantic_loss`: ours vs the naive semantic path loss (section ``loss``).
* :mod:`.heads`: the semantic loss including the semantic heads (section ``heads``).
* :mod:`.worker`: what a ``--worker`` subprocess runs.
* :mod:`.kmeans`: hierarchical k-means (sections ``kmeans`` and ``kmeans-by-dim``).
* :mod:`.feature_bank`: the clustering feature bank's size (section ``bank``).
"""
