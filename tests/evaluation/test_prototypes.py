"""hirl_mm.evaluation.prototypes: stored prototypes, their space, and assignment to them."""
import pytest
import torch
import torch.nn.functional as F

from hirl_mm.evaluation.prototypes import (assign_to_prototypes, load_stored_prototypes,
                                           read_prototypes)
from hirl_mm.models.utils.hierarchical_prototypes import encode_space


def _state(space=None, updates=3, dim=4) -> dict:
    state = {
        'prototypes.centroids_0': torch.eye(4)[:, :dim] if dim <= 4 else torch.rand(4, dim),
        'prototypes.centroids_1': torch.rand(2, dim),
        'prototypes.parents_0': torch.tensor([0, 0, 1, 1]),
        'prototypes.im2cluster_0': torch.tensor([0, 1, 2, 3, 3, 0, 1]),
        'prototypes.im2cluster_1': torch.tensor([0, 0, 1, 1, 1, 0, 0]),
        'prototypes.num_updates': torch.tensor(updates)}
    if space is not None:
        state['prototypes.embedding_space'] = encode_space(space)
    return state


def test_read_prototypes():
    assert read_prototypes({'backbone.x': torch.zeros(1)}) is None
    state = _state(updates=0)
    assert read_prototypes(state) is None  # saved during the warm-up: never clustered
    state['prototypes.num_updates'] = torch.tensor(3)
    centroids, parents = read_prototypes(state)
    assert [tuple(c.shape) for c in centroids] == [(4, 4), (2, 4)]
    assert [p.tolist() for p in parents] == [[0, 0, 1, 1]]
    del state['prototypes.parents_0']
    with pytest.raises(KeyError, match='parents_0'):
        read_prototypes(state)


def test_load_stored_prototypes_reads_the_recorded_space():
    assert load_stored_prototypes({'backbone.x': torch.zeros(1)}) is None
    stored = load_stored_prototypes(_state('neck', dim=16))
    assert stored.recorded and stored.space == 'neck' and stored.dim == 16
    assert stored.describe_space() == 'neck (16-d)'
    assert stored.ready and stored.num_updates == 3 and stored.num_samples == 7
    assert stored.num_clusters == [4, 2]
    result = stored.as_result()
    assert result.im2cluster[1].tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert load_stored_prototypes(_state('backbone', dim=64)).describe_space() == \
        'backbone (64-d)'
    warm_up = load_stored_prototypes(_state('neck', updates=0))
    assert warm_up is not None and not warm_up.ready


def test_legacy_prototypes_are_on_the_backbone():
    """Checkpoints written before the space was recorded: built on the pooled backbone."""
    stored = load_stored_prototypes(_state(space=None, dim=64))
    assert not stored.recorded and stored.space == 'backbone'
    assert stored.describe_space() == 'backbone (64-d; legacy checkpoint)'


@pytest.mark.parametrize('chunk_size', [1, 3, 4096])
def test_assign_to_prototypes_lifts_through_the_parents(chunk_size):
    centroids = [torch.eye(4), F.normalize(torch.tensor([[1., 1, 0, 0], [0, 0, 1, 1]])),
                 torch.tensor([[1., 1, 1, 1]]) / 2]
    parents = [torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0])]
    features = F.normalize(torch.eye(4)[[2, 0, 3, 1, 2]] + 0.1 * torch.rand(5, 4), dim=1)
    result = assign_to_prototypes(features, centroids, parents, chunk_size=chunk_size)
    assert result.im2cluster[0].tolist() == [2, 0, 3, 1, 2]
    assert result.im2cluster[1].tolist() == [1, 0, 1, 0, 1]
    assert result.im2cluster[2].tolist() == [0] * 5
    assert result.num_clusters == [4, 2, 1]
    with pytest.raises(ValueError, match='dimensions'):
        assign_to_prototypes(torch.rand(5, 3), centroids, parents)
    with pytest.raises(ValueError, match='parents'):
        assign_to_prototypes(features, centroids, parents[:1])
