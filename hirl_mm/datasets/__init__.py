"""Datasets of hirl_mm."""
from .transforms import *  # noqa: F401,F403
from .fashion_mnist import (FASHION_MNIST_CLASSES, FASHION_MNIST_COARSE_CLASSES,
                            FASHION_MNIST_FINE_TO_COARSE, HierarchicalFashionMNIST, read_idx)

__all__ = [
    'HierarchicalFashionMNIST', 'FASHION_MNIST_CLASSES', 'FASHION_MNIST_COARSE_CLASSES',
    'FASHION_MNIST_FINE_TO_COARSE', 'read_idx'
]
