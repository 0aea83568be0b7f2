"""hirl_mm.evaluation.results_output: data set names, output paths, JSON and tables."""
import json
import os

from hirl_mm.evaluation.results_output import (dataset_name, default_output_file,
                                               describe_dataset, dump_json, format_table)


def test_names_and_output_paths(tmp_path):
    assert dataset_name(dict(type='ImageNet', split='val'), 'query') == 'val'
    assert dataset_name(dict(type='CustomDataset'), 'query') == 'query'
    assert describe_dataset(dict(type='ImageNet', data_root='d', split='val')) == \
        'ImageNet split=val'
    assert default_output_file('work/x/epoch_2.pth', 'knn') == \
        os.path.join(os.path.abspath('work/x'), 'epoch_2_knn.json')
    assert default_output_file('work/x/epoch_2.pth', 'knn', 'out') == \
        os.path.join('out', 'epoch_2_knn.json')
    assert default_output_file('s3://b/epoch_2.pth', 'knn') == \
        os.path.join('.', 'epoch_2_knn.json')
    path = dump_json(dict(a=1.5), str(tmp_path / 'sub' / 'r.json'))
    assert json.loads(open(path).read()) == dict(a=1.5)


def test_format_table():
    text = format_table(['name', 'K', 'NMI'], [['k-means', 10, 0.51234], ['level 0', 5, None]])
    lines = text.splitlines()
    assert lines[0].split() == ['name', 'K', 'NMI']
    assert lines[2].split() == ['k-means', '10', '0.5123']
    assert lines[3].split() == ['level', '0', '5', '-']
    assert len({len(line) for line in lines[:3]}) == 1  # aligned columns
