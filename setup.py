"""hirl_mm: HIRL (hierarchical image representation learning) for mmpretrain.

The ranges below are what hirl_mm supports; requirements/*.txt pin the set that is tested
(tools/setup_env.sh installs it). mmcv (>= 2.0, < 2.2, for mmdet 3.3 / mmseg 1.2) is not
listed: it must be built against the installed torch (docs/en/get_started.md). Python
3.10 is the floor of the pinned stack (torch 2.13.0 has no build for older Pythons).
"""
from setuptools import find_packages, setup

setup(
    name='hirl_mm',
    version='0.1.0',
    description='HIRL hierarchical prototypes and semantic path discrimination for '
    'every self-supervised method of mmpretrain',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    license='Apache-2.0',
    packages=find_packages(include=['hirl_mm', 'hirl_mm.*']),
    install_requires=[
        'torch>=2.0',
        'mmengine>=0.10.3,<1.0',
        'mmpretrain>=1.2.0,<1.3',
        'numpy<2',  # numpy 2 breaks mmcv's hue jitter and mmpretrain's retrieval metrics
        'scipy',
    ],
    extras_require={
        'cpu': ['faiss-cpu>=1.7.4'],
        'gpu': ['faiss-gpu>=1.7.4'],
        'transfer': ['mmdet>=3.3.0,<3.4', 'mmsegmentation>=1.2.2,<1.3', 'ftfy', 'regex'],
        'tests': ['pytest', 'pytest-timeout'],
    },
)
