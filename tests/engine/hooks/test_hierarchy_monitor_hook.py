"""HierarchyMonitorHook: what it logs during a real short HIRL run equals the metrics
computed directly from the trained model and its prototypes."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model

from hirl_mm.engine.hooks import HierarchyMonitorHook
from hirl_mm.engine.hooks.hierarchy_monitor_hook import holdout_split
from hirl_mm.evaluation import normalized_mutual_info, purity, weighted_knn_classify
from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.utils.feature_extraction import extract_embeddings
from tiny_setup import hirl_config, logged_scalars

pytestmark = pytest.mark.usefixtures('single_thread')
TREE = {'class_0': 'warm', 'class_1': 'warm', 'class_2': 'cold', 'class_3': 'cold'}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='knn_holdout'):
        HierarchyMonitorHook(knn_holdout=1.5)


def test_holdout_split_is_fixed_disjoint_and_capped():
    queries, memory = holdout_split(50, 0.1, 1000, seed=3)
    assert len(queries) == 5 and len(memory) == 45
    assert sorted(torch.cat([queries, memory]).tolist()) == list(range(50))
    assert torch.equal(queries, holdout_split(50, 0.1, 1000, seed=3)[0])
    assert len(holdout_split(50, 0.5, 7, seed=0)[0]) == 7


def test_logged_values_equal_the_metrics_computed_directly(image_folder, tmp_path):
    cfg = hirl_config('SimCLR', image_folder, tmp_path, max_epochs=3, warmup_epochs=1)
    cfg['custom_hooks'].append(dict(type='HierarchyMonitorHook', knn_k=5, knn_holdout=0.25,
                                    label_hierarchy=TREE, batch_size=40))
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, HierarchyMonitorHook))
    # After clustering rounds 1 and 2 (before epochs 1 and 2) and at the end.
    assert [entry['step'] for entry in hook.history] == [1, 2, 3]
    assert logged_scalars(tmp_path, 'monitor/knn_top1') == [
        entry['monitor/knn_top1'] for entry in hook.history]

    model = get_ori_model(runner.model)
    fine = torch.tensor([c for c in range(4) for _ in range(10)])
    labels = {'fine': fine, 'coarse': 1 - fine // 2}  # groups by sorted name: cold, warm
    last = hook.history[-1]
    for level, assign in enumerate(model.prototypes.im2cluster):
        for name, truth in labels.items():
            assert last[f'monitor/level{level}_nmi_{name}'] == pytest.approx(
                normalized_mutual_info(truth, assign), abs=1e-12)
            assert last[f'monitor/level{level}_purity_{name}'] == pytest.approx(
                purity(truth, assign), abs=1e-12)
    assert logged_scalars(tmp_path, 'monitor/level2_nmi_coarse')[-1] == \
        last['monitor/level2_nmi_coarse']

    # The final KNN: the trained backbone's pooled features of the same held-out split.
    model.eval()
    features = extract_embeddings(model, hook._loader,
                                  lambda x: backbone_embedding(model.backbone(x)),
                                  show_progress=False)
    queries, memory = holdout_split(40, 0.25, 2000, seed=0)
    direct = weighted_knn_classify(features[memory], fine[memory], features[queries],
                                   fine[queries], 4, ks=[5])[5]
    assert last['monitor/knn_top1'] == pytest.approx(direct)


def test_unlabelled_data_is_refused_before_training(image_folder, tmp_path):
    cfg = hirl_config('SimCLR', image_folder, tmp_path, max_epochs=1)
    runner = Runner.from_cfg(Config(cfg))
    hook = HierarchyMonitorHook(dataset=dict(
        type='CustomDataset', data_root=str(image_folder), with_label=False,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
    with pytest.raises(ValueError, match='needs the labels of the training images'):
        hook.before_train(runner)
