"""tools/analysis_tools/gpu_check.py: its CPU side at toy size, so that the GPU check
cannot rot on machines without a GPU, and its report helpers.

The check runs in this process (importing torch and hirl_mm again in a subprocess takes
longer than the check itself on a small machine); what it changes is put back: the
environment by ``monkeypatch``, torch's threads by ``single_thread``, and it destroys the
process groups it initialises.
"""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
ANALYSIS_TOOLS = REPO / 'tools' / 'analysis_tools'
# What a CPU run must measure (faiss may be missing: then hook-faiss is skipped).
MUST_RUN_ON_CPU = ('kmeans', 'training', 'hook-torch', 'sharded', 'resume')

sys.path.insert(0, str(ANALYSIS_TOOLS))
import gpu_check  # noqa: E402
from gpu_checks.report import CheckSkipped, markdown, run_check  # noqa: E402
from gpu_checks.training import baseline_config, scale_pipeline  # noqa: E402


def _numbers(figures: dict) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in figures.values())


@pytest.mark.slow
@pytest.mark.usefixtures('single_thread')
def test_cpu_side_of_the_gpu_check(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'gpu_check'
    # Restored afterwards: main() hides CUDA for --device cpu; train.py exports LOCAL_RANK.
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    monkeypatch.setenv('LOCAL_RANK', '0')
    assert gpu_check.main(['--device', 'cpu', '--tiny', '--out-dir', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    text = (out / 'report.md').read_text()
    assert text in capsys.readouterr().out  # the markdown is printed too
    assert [c['name'] for c in report['checks']] == list(gpu_check.CHECKS)
    assert report['machine']['device'] == 'cpu' and report['tiny']
    for check in report['checks']:
        assert check['status'] in ('ok', 'skipped'), check
        if check['status'] == 'skipped':
            assert check['reason'] and check['name'] not in MUST_RUN_ON_CPU, check
        else:
            assert check['figures'] and _numbers(check['figures']), check
        assert f'## {check["name"]}: {check["status"]}' in text
    checks = {c['name']: c for c in report['checks']}
    training = checks['training']['figures']
    for run in ('baseline', 'hirl', 'hirl_bank'):
        assert training[f'{run}.images_per_s'] > 0 and training[f'{run}.iterations'] == 8
    assert training['hirl.clustering_rounds'] == training['hirl_bank.clustering_rounds'] == 1
    assert 'skipped: AMP' in checks['training']['info']['amp']  # CUDA only
    kmeans = checks['kmeans']['figures']
    assert kmeans['torch_fp32.objective_vs_fp32'] == 0
    assert {'torch_tf32.agreement_with_fp32', 'torch_bf16.agreement_with_fp32'} <= set(kmeans)
    sharded = checks['sharded']['figures']
    assert sharded['gloo_world1.identical'] == 1
    assert 'gloo_2_processes.agreement_level0' in sharded  # the NCCL fallback's path
    assert checks['hook-torch']['info']['prototypes_device'] == 'cpu'
    assert set(checks['resume']['info'].values()) == {'yes'}


@pytest.mark.skipif(torch.cuda.is_available(), reason='the machine has CUDA')
def test_cuda_requested_without_cuda_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match='CUDA is not available.*--device cpu --tiny'):
        gpu_check.main(['--out-dir', str(tmp_path)])
    assert not (tmp_path / 'report.json').exists()


def test_baseline_config_named_in_the_hirl_config_exists():
    path = baseline_config()
    assert path.startswith('configs/baselines/mocov2') and (REPO / path).is_file()


def test_scale_pipeline_reaches_nested_transforms():
    view = [dict(type='RandomResizedCrop', scale=224),
            dict(type='RandomApply', transforms=[dict(type='CenterCrop', crop_size=224)])]
    pipeline = [dict(type='MultiView', transforms=[view]),
                dict(type='ResizeEdge', scale=256)]
    scale_pipeline(pipeline, 32)
    assert view[0]['scale'] == 32 and view[1]['transforms'][0]['crop_size'] == 32
    assert pipeline[1]['scale'] == round(32 * 256 / 224)


def test_run_check_records_each_outcome():
    def skip():
        raise CheckSkipped('faiss has no GPU here')

    def fail():
        raise ValueError('boom')

    results = [run_check('ok', lambda: dict(figures=dict(x=1.)), 10, 10),
               run_check('skip', skip, 10, 10), run_check('fail', fail, 10, 10),
               run_check('late', lambda: {}, 10, 0)]
    assert [r['status'] for r in results] == ['ok', 'skipped', 'failed', 'skipped']
    assert results[1]['reason'] == 'faiss has no GPU here'
    assert results[2]['error'] == 'ValueError: boom' and 'boom' in results[2]['traceback']
    assert 'time limit' in results[3]['reason']
    text = markdown(dict(command='gpu_check', seconds=1., time_limit_s=480., machine={},
                         checks=results))
    assert '## fail: failed' in text and 'Error: `ValueError: boom`' in text
    assert '| x | 1 |' in text and '1 ok, 2 skipped, 1 failed' in text


def test_targets_are_judged_on_the_fastest_tensor_core_precision():
    from gpu_checks.clustering import _targets
    rows = {'torch fp32': dict(name='torch fp32', seconds=3.0, objective_vs_reference=0.),
            'torch tf32': dict(name='torch tf32', seconds=1.5, objective_vs_reference=0.001),
            'torch bf16': dict(name='torch bf16', seconds=0.9, objective_vs_reference=-0.006)}
    verdict = _targets(rows, faiss_seconds=4.0)
    assert verdict == ('torch bf16 0.90 s (meets <= 2.0 s); objective -0.600 % vs fp32 '
                       '(MISSES <= 0.5 %); 4.4x faiss-gpu (MISSES >= 5.0x)')
