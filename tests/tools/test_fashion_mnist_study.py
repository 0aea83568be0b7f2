"""The study script's bookkeeping (its runs themselves take minutes: see README)."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / 'tools/benchmarks/classification/fashion_mnist_study.py'
spec = importlib.util.spec_from_file_location('fashion_mnist_study', SCRIPT)
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def test_summary_table_mean_and_sample_std():
    runs = {
        'simclr': [dict(knn20=80.0, knn200=70.0, linear=85.0, kmeans_nmi_fine_k10=0.5,
                        kmeans_nmi_coarse_k5=0.4),
                   dict(knn20=82.0, knn200=72.0, linear=87.0, kmeans_nmi_fine_k10=0.7,
                        kmeans_nmi_coarse_k5=0.6)],
        'hirl-simclr': [dict(knn20=81.0, knn200=71.0, linear=86.0, kmeans_nmi_fine_k10=0.6,
                             kmeans_nmi_coarse_k5=0.5, proto_nmi_fine_l1=0.55,
                             proto_nmi_coarse_l2=0.45)],
    }
    lines = study.summarize(runs).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith('| simclr | 2 | 81.00 +- 1.41 | 71.00 +- 1.41 | 86.00 +- 1.41 |')
    assert '0.600 +- 0.141' in lines[2] and lines[2].endswith('| - | - |')
    assert lines[3].endswith('| 0.550 +- 0.000 | 0.450 +- 0.000 |')


def test_overrides_reach_config_and_command_line():
    overrides = study._overrides(2, 500)
    cfg = study._load_config(study.VARIANTS['hirl-simclr'], overrides)
    assert cfg.randomness.seed == 2
    assert cfg.train_dataloader.dataset.num_per_class == 500
    assert cfg.model.type == 'HIRL'
    assert study._overrides(0, None) == {'randomness.seed': 0}
