import pytest
import torch

from hirl_mm.models.utils.hierarchical_prototypes import (HierarchicalPrototypes,
                                                       checkpoint_space)


def _clustering(n=10, dim=4):
    torch.manual_seed(0)
    centroids = [torch.nn.functional.normalize(torch.randn(k, dim), dim=1) for k in (4, 2)]
    parents = [torch.tensor([0, 0, 1, 1])]
    im2 = torch.randint(0, 4, (n, ))
    return centroids, parents, [im2, parents[0][im2]]


def test_update_and_paths():
    protos = HierarchicalPrototypes([4, 2], dim=4)
    assert not protos.ready and protos.num_samples == 0
    with pytest.raises(RuntimeError, match='No clustering yet'):
        protos.paths(torch.tensor([0]))
    centroids, parents, im2cluster = _clustering()
    protos.update(centroids, parents, im2cluster)
    assert protos.ready and protos.num_samples == 10 and int(protos.num_updates) == 1
    idx = torch.tensor([3, 0, 7])
    paths = protos.paths(idx)
    assert paths.shape == (3, 2)
    assert torch.equal(paths[:, 0], im2cluster[0][idx])
    assert torch.equal(paths[:, 1], parents[0][paths[:, 0]])
    with pytest.raises(IndexError, match='outside the 10 clustered samples'):
        protos.paths(torch.tensor([10]))


def test_update_rejects_wrong_shapes():
    protos = HierarchicalPrototypes([4, 2], dim=4)
    centroids, parents, im2cluster = _clustering(dim=5)
    with pytest.raises(ValueError, match='do not fit'):
        protos.update(centroids, parents, im2cluster)
    with pytest.raises(ValueError, match='levels'):
        protos.update(centroids[:1], [], im2cluster[:1])


def test_state_dict_round_trip_resizes_assignments():
    protos = HierarchicalPrototypes([4, 2], dim=4)
    protos.update(*_clustering(n=13))
    fresh = HierarchicalPrototypes([4, 2], dim=4)
    fresh.load_state_dict(protos.state_dict())
    assert fresh.ready and fresh.num_samples == 13
    for a, b in zip(fresh.state_dict().values(), protos.state_dict().values()):
        assert torch.equal(a, b)


def test_reassign_moves_to_nearest_and_lifts():
    protos = HierarchicalPrototypes([4, 2], dim=4)
    centroids, parents, im2cluster = _clustering()
    protos.update(centroids, parents, im2cluster)
    idx = torch.tensor([1, 2])
    target = torch.tensor([3, 1])
    changed = protos.reassign(idx, centroids[0][target])
    assert torch.equal(protos.im2cluster[0][idx], target)
    assert torch.equal(protos.im2cluster[1][idx], parents[0][target])
    assert torch.equal(changed, im2cluster[0][idx] != target)


def test_empty_levels_rejected():
    with pytest.raises(ValueError, match='num_clusters is empty'):
        HierarchicalPrototypes([], dim=4)


def test_state_dict_records_the_embedding_space():
    protos = HierarchicalPrototypes([4, 2], dim=4, embedding='neck')
    state = protos.state_dict()
    assert checkpoint_space(state, prefix='') == 'neck' and protos.embedding == 'neck'
    assert checkpoint_space({}, prefix='') == 'backbone'  # checkpoints written before


def test_loading_prototypes_of_another_space_or_width_is_refused():
    protos = HierarchicalPrototypes([4, 2], dim=4, embedding='backbone')
    protos.update(*_clustering())
    state = protos.state_dict()
    with pytest.raises(ValueError, match="'backbone' embedding space .*embedding='backbone'"):
        HierarchicalPrototypes([4, 2], dim=4, embedding='neck').load_state_dict(state)
    with pytest.raises(ValueError, match=r'\(4-d\).*\(8-d\)'):
        HierarchicalPrototypes([4, 2], dim=8, embedding='backbone').load_state_dict(state)


def test_checkpoints_from_before_the_embedding_option_are_refused_with_the_reason():
    protos = HierarchicalPrototypes([4, 2], dim=4, embedding='backbone')
    protos.update(*_clustering())
    legacy = {k: v for k, v in protos.state_dict().items() if k != 'embedding_space'}
    fresh = HierarchicalPrototypes([4, 2], dim=4, embedding='backbone')
    with pytest.raises(ValueError, match='before its embedding options.*still evaluate'):
        fresh.load_state_dict(legacy)
    # Plain weights without any prototypes (e.g. an mmpretrain checkpoint) are not checked.
    fresh.load_state_dict({}, strict=False)


def test_records_the_data_it_was_built_on_and_says_what_changed():
    protos = HierarchicalPrototypes([4, 2], dim=4)
    assert protos.data_mismatch(10, b'a' * 16) is None  # not clustered: nothing to check
    protos.update(*_clustering(n=10))
    protos.record_data(b'a' * 16)
    assert protos.recorded_fingerprint == b'a' * 16
    assert protos.data_mismatch(10, b'a' * 16) is None
    assert protos.data_mismatch(9, b'a' * 16) == ('the training set has 9 samples, the '
                                                  'prototypes were built on 10')
    assert 'same size (10) but another sample list' in protos.data_mismatch(10, b'b' * 16)
    # Checkpoints carry it: a fresh model gets it back.
    fresh = HierarchicalPrototypes([4, 2], dim=4)
    fresh.load_state_dict(protos.state_dict())
    assert fresh.recorded_fingerprint == b'a' * 16 and fresh.num_samples == 10


def test_checkpoints_without_a_fingerprint_load_and_say_so(monkeypatch):
    import hirl_mm.models.utils.hierarchical_prototypes as module
    # Capture what is logged, whatever loggers earlier tests left behind.
    messages = []
    monkeypatch.setattr(module, 'print_log', lambda msg, *a, **k: messages.append(msg))
    protos = HierarchicalPrototypes([4, 2], dim=4)
    protos.update(*_clustering(n=10))
    old = {k: v for k, v in protos.state_dict().items() if k != 'data_fingerprint'}
    fresh = HierarchicalPrototypes([4, 2], dim=4)
    result = fresh.load_state_dict(old, strict=True)  # no missing key either
    assert not result.missing_keys
    logged = '\n'.join(messages)
    assert 'record no fingerprint' in logged and 're-clusters before using them' in logged
    assert fresh.ready and fresh.recorded_fingerprint is None
    assert 'record no fingerprint of their data' in fresh.data_mismatch(10, b'a' * 16)
