"""Label hierarchies of any depth: a JSON file (class name -> parent name) over fine labels.

The file format (documented in docs/en/user_guides/label_hierarchies.md)::

    {
      "level_names": ["superclass"],      # optional: the levels above the classes
      "parents": {"apple": "fruit and vegetables",
                  "maple_tree": "trees", ...}
    }

``parents`` maps every class of the data set to its parent; a parent may itself have a
parent (``"trees": "plants"``), to any depth. A plain mapping without the ``parents`` key is
read the same way. A class whose chain is shorter than the longest one keeps its top
ancestor on the coarser levels (so every level is a partition of the images).

A data set names its hierarchy in its metainfo, so that every tool reading it (the
evaluation tools, the report, the picture, the monitor) scores all the levels::

    dataset = dict(type='CustomDataset', data_root='data/my_images',
                   metainfo=dict(label_hierarchy=dict(file='data/my_hierarchy.json')))

Data sets with ``get_coarse_labels()`` (``HierarchicalFashionMNIST``) keep their two levels
(``fine`` / ``coarse``) without a file.
"""
import json
import os.path as osp
from collections import OrderedDict
from typing import (Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
from torch import Tensor

__all__ = ['LabelLevel', 'LabelHierarchy', 'load_label_hierarchy', 'dataset_label_levels']


def _no_duplicate_keys(source: str) -> Callable[[List[Tuple[str, Any]]], dict]:
    """A ``json`` ``object_pairs_hook`` that refuses a key given twice in one object.

    ``json`` keeps the last value of a repeated key without a word, so a class listed
    under two parents would silently change the groups (and every score against them).

    Args:
        source (str): The file (or metainfo) being read, for the message.

    Returns:
        Callable: The hook; it raises ``ValueError`` naming the keys and their values.
    """

    def hook(pairs: List[Tuple[str, Any]]) -> dict:
        seen: Dict[str, List[Any]] = {}
        for key, value in pairs:
            seen.setdefault(key, []).append(value)
        repeated = {key: values for key, values in seen.items() if len(values) > 1}
        if repeated:
            shown = '; '.join(f'{key!r} -> {values}' for key, values in
                              list(repeated.items())[:5])
            raise ValueError(
                f'{source} lists {len(repeated)} key(s) more than once in one object '
                f'(JSON would silently keep only the last): {shown}. Give every class '
                f'exactly one parent: delete the wrong entries.')
        return dict(pairs)

    return hook


class LabelLevel(NamedTuple):
    """One level of labels of a data set's images.

    Attributes:
        labels (Tensor): ``[N]`` int64 label of every image at this level.
        num_classes (int): Number of classes of the level.
        class_names (list[str], optional): Name of each class index, where known.
    """

    labels: Tensor
    num_classes: int
    class_names: Optional[List[str]] = None


class LabelHierarchy:
    """Parents of class names, read from a mapping or a JSON file.

    Args:
        parents (Mapping[str, str]): Class (or group) name -> parent name.
        level_names (Sequence[str], optional): Names of the levels above the classes,
            parents first (the classes are ``fine``). Defaults to ``coarse`` for one level,
            else ``coarse1``, ``coarse2``, ...
        source (str): Where it came from, for error messages.
    """

    def __init__(self, parents: Mapping[str, str],
                 level_names: Optional[Sequence[str]] = None,
                 source: str = 'the label hierarchy') -> None:
        bad = {k: v for k, v in parents.items()
               if not isinstance(k, str) or not isinstance(v, str)}
        if bad:
            raise ValueError(f'{source}: every entry must map a class name to its parent '
                             f'name (strings); got {list(bad.items())[:3]}.')
        self.parents = dict(parents)
        self.level_names = list(level_names) if level_names is not None else None
        self.source = source

    @classmethod
    def from_dict(cls, content: Mapping, source: str = 'the label hierarchy'
                  ) -> 'LabelHierarchy':
        """From ``{'parents': {...}, 'level_names': [...]}`` or a plain mapping."""
        if isinstance(content, Mapping) and isinstance(content.get('parents'), Mapping):
            return cls(content['parents'], content.get('level_names'), source)
        if not isinstance(content, Mapping):
            raise ValueError(f'{source} must be a JSON object (class name -> parent name, '
                             f'or {{"parents": {{...}}}}), got {type(content).__name__}.')
        return cls(content, None, source)

    @classmethod
    def from_file(cls, path: str) -> 'LabelHierarchy':
        """Read a JSON hierarchy file."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'Label hierarchy file {path} does not exist; give the '
                                    f'path of a JSON file mapping class names to parents.')
        with open(path) as f:
            try:
                content = json.load(f, object_pairs_hook=_no_duplicate_keys(path))
            except json.JSONDecodeError as error:
                raise ValueError(f'{path} is not valid JSON ({error}); the label hierarchy '
                                 f'is a JSON object, class name -> parent name.') from None
        return cls.from_dict(content, source=path)

    def ancestors(self, name: str) -> List[str]:
        """``name``'s chain of ancestors, parent first."""
        chain, seen = [], {name}
        while name in self.parents:
            name = self.parents[name]
            if name in seen:
                raise ValueError(f'{self.source}: the parents form a cycle through '
                                 f'{name!r}; every chain must end at a top group.')
            seen.add(name)
            chain.append(name)
        return chain

    def level_classes(self, classes: Sequence[str]) -> List[List[str]]:
        """The class names of every level above the fine one, for each fine class.

        Args:
            classes (Sequence[str]): The data set's class names, by label index.

        Returns:
            list[list[str]]: ``out[l][c]``: the level-``l + 1`` group of fine class ``c``.

        Raises:
            ValueError: If a class has no parent or the parents form a cycle.
        """
        missing = [c for c in classes if c not in self.parents]
        if missing:
            raise ValueError(f'{self.source} gives no parent for {len(missing)} class(es) '
                             f'of the data set, e.g. {missing[:5]}; add them (class name -> '
                             f'parent name, spelled as the data set\'s classes: '
                             f'{list(classes)[:5]}...).')
        chains = [self.ancestors(c) for c in classes]
        depth = max(len(chain) for chain in chains)
        # Shorter chains keep their top ancestor on the coarser levels.
        return [[chain[min(level, len(chain) - 1)] for chain in chains]
                for level in range(depth)]

    def names(self, depth: int) -> List[str]:
        """Names of the ``depth + 1`` levels: ``fine``, then the levels above it."""
        if self.level_names is not None:
            if len(self.level_names) != depth:
                raise ValueError(f'{self.source}: level_names has {len(self.level_names)} '
                                 f'names but the hierarchy has {depth} level(s) above the '
                                 f'classes; give one name per level, parents first.')
            if 'fine' in self.level_names:
                raise ValueError(f'{self.source}: "fine" names the classes themselves; '
                                 f'choose other level_names.')
            return ['fine'] + self.level_names
        if depth == 1:
            return ['fine', 'coarse']
        return ['fine'] + [f'coarse{level}' for level in range(1, depth + 1)]

    def label_levels(self, fine_labels: Tensor, classes: Sequence[str]
                     ) -> 'OrderedDict[str, LabelLevel]':
        """Every level's labels of the images whose fine labels are ``fine_labels``.

        Group indices follow the sorted group names, so they do not depend on the order of
        the file.
        """
        fine_labels = torch.as_tensor(np.asarray(fine_labels), dtype=torch.long)
        groups = self.level_classes(classes)
        names = self.names(len(groups))
        levels = OrderedDict()
        levels[names[0]] = LabelLevel(fine_labels, len(classes), list(classes))
        for name, of_class in zip(names[1:], groups):
            group_names = sorted(set(of_class))
            index = {g: i for i, g in enumerate(group_names)}
            class_to_group = torch.tensor([index[g] for g in of_class], dtype=torch.long)
            levels[name] = LabelLevel(class_to_group[fine_labels], len(group_names),
                                      group_names)
        return levels


def load_label_hierarchy(spec: Union[None, str, Mapping, Sequence, LabelHierarchy]
                         ) -> Optional[LabelHierarchy]:
    """A :class:`LabelHierarchy` from what a config or a data set's metainfo holds.

    Args:
        spec: None; a JSON file path; ``dict(file=PATH)``; the content itself (a mapping);
            the file's lines (what mmengine's metainfo makes of a file path); a hierarchy.

    Returns:
        LabelHierarchy | None: None for None.
    """
    if spec is None or isinstance(spec, LabelHierarchy):
        return spec
    if isinstance(spec, str):
        return LabelHierarchy.from_file(spec)
    if isinstance(spec, Mapping):
        if set(spec) == {'file'}:
            return LabelHierarchy.from_file(spec['file'])
        return LabelHierarchy.from_dict(spec)
    if isinstance(spec, (list, tuple)) and all(isinstance(line, str) for line in spec):
        # mmengine's BaseDataset reads a metainfo value that is a file path into its lines.
        try:
            content = json.loads('\n'.join(spec),
                                 object_pairs_hook=_no_duplicate_keys('metainfo label_hierarchy'))
        except json.JSONDecodeError:
            raise ValueError('metainfo label_hierarchy is not a JSON hierarchy; write '
                             "label_hierarchy=dict(file='path/to/hierarchy.json').") from None
        return LabelHierarchy.from_dict(content, source='metainfo label_hierarchy')
    raise TypeError(f'label_hierarchy must be a JSON file path, dict(file=PATH) or the '
                    f'mapping itself, got {type(spec).__name__}.')


def dataset_label_levels(dataset, hierarchy=None) -> 'OrderedDict[str, LabelLevel]':
    """All label levels of a data set's images, fine first.

    The hierarchy comes from ``hierarchy`` (anything :func:`load_label_hierarchy` reads),
    else from the data set's ``metainfo['label_hierarchy']``; without one, a data set with
    ``get_coarse_labels()`` gives ``fine`` and ``coarse``, any other just ``fine``.

    Args:
        dataset: An mmengine / mmpretrain data set with ``get_gt_labels()``.
        hierarchy: Overrides the data set's own.

    Returns:
        OrderedDict[str, LabelLevel]: Level name -> labels, class count, class names.
    """
    labels = torch.as_tensor(np.asarray(dataset.get_gt_labels()), dtype=torch.long)
    metainfo = getattr(dataset, 'metainfo', None) or {}
    classes = metainfo.get('classes')
    classes = list(classes) if classes else None
    tree = load_label_hierarchy(hierarchy if hierarchy is not None
                                else metainfo.get('label_hierarchy'))
    if tree is not None:
        if classes is None:
            raise ValueError('A label hierarchy maps class names, but the data set has no '
                             "metainfo['classes']; give it classes (e.g. CustomDataset's "
                             'folder names or classes=[...]).')
        return tree.label_levels(labels, classes)
    num = len(classes) if classes else (int(labels.max()) + 1 if labels.numel() else 0)
    levels = OrderedDict(fine=LabelLevel(labels, num, classes))
    if callable(getattr(dataset, 'get_coarse_labels', None)):
        coarse = torch.as_tensor(np.asarray(dataset.get_coarse_labels()), dtype=torch.long)
        names = metainfo.get('coarse_classes')
        levels['coarse'] = LabelLevel(coarse, len(names) if names else
                                      int(coarse.max()) + 1 if coarse.numel() else 0,
                                      list(names) if names else None)
    return levels

