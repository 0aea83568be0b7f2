"""The evaluation tools refuse bad inputs at once, naming the cause and the fix (issue 21,
cases 3, 9 and 10): a label hierarchy listing a class twice (json would keep the last
parent silently), checked by hirl_report.py before its KNN step, and a checkpoint that does
not fit the config given to visualize_hierarchy.py (a summary, not torch's hundreds of
lines). On the checkpoint of a real tiny HIRL run."""
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from hirl_mm.evaluation.label_hierarchy import LabelHierarchy
from tiny_setup import hirl_config, make_image_folder
from tool_loading import load_tool

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# class_1 under two parents: json.load would keep "cold" without a word.
DUPLICATE = ('{"class_0": "warm", "class_1": "warm", "class_2": "cold", "class_3": "cold", '
             '"class_1": "cold"}')

pytestmark = pytest.mark.usefixtures('single_thread')


def _tool(name: str):
    return load_tool(f'tools/analysis_tools/{name}.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(work dir, config dict) of a 2-epoch HIRL-SimCLR run on 16 images."""
    work = tmp_path_factory.mktemp('tool_refusals')
    data = make_image_folder(work / 'data', per_class=4)
    cfg = hirl_config('SimCLR', data, work, max_epochs=2, warmup_epochs=1,
                      num_clusters=(4, 2), checkpoint_interval=2)
    cfg['report'] = dict(query_dataset=dict(type='CustomDataset', data_root=str(data),
                                            pipeline=PIPELINE),
                         eval_pipeline=PIPELINE, knn_ks=[1], batch_size=16)
    Runner.from_cfg(Config(cfg)).train()
    Config(cfg).dump(str(work / 'cfg.py'))
    (work / 'duplicate.json').write_text(DUPLICATE)
    return work, cfg


def test_a_class_listed_twice_is_refused(tmp_path):
    (tmp_path / 'tree.json').write_text('{"parents": {"a": "x", "b": "x", "a": "y"}}')
    with pytest.raises(ValueError, match=r"lists 1 key\(s\) more than once in one object.*"
                                         r"'a' -> \['x', 'y'\].*exactly one parent"):
        LabelHierarchy.from_file(str(tmp_path / 'tree.json'))


def test_hirl_report_checks_the_hierarchy_before_knn(trained, monkeypatch):
    work, _ = trained
    report = _tool('hirl_report')

    def no_extraction(*args, **kwargs):
        raise AssertionError('the hierarchy must be checked before the KNN step')

    monkeypatch.setattr(report, 'extract_embeddings', no_extraction)
    with pytest.raises(SystemExit, match=r"duplicate.json lists 1 key\(s\) more than once.*"
                                         r"'class_1' -> \['warm', 'cold'\]"):
        report.main([str(work / 'cfg.py'), str(work / 'epoch_2.pth'),
                     '--label-hierarchy', str(work / 'duplicate.json')])


def test_visualize_refuses_a_checkpoint_of_another_config(trained, tmp_path):
    work, cfg = trained
    # A backbone twice as wide as the checkpoint's (hundreds of lines from torch).
    cfg['model']['backbone']['base_channels'] = 16
    cfg['model']['neck']['in_channels'] = 128
    Config(cfg).dump(str(tmp_path / 'other.py'))
    with pytest.raises(SystemExit) as exit_info:
        _tool('visualize_hierarchy').main([str(tmp_path / 'other.py'),
                                           str(work / 'epoch_2.pth'),
                                           '--out', str(tmp_path / 'tree.png')])
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and 'does not fit its pre-training model' in message
    assert 'tensor(s) differ in shape, e.g. backbone.' in message
    assert 'Use the config the checkpoint was trained with' in message
    assert len(message.splitlines()) <= 3 and 'size mismatch' not in message
