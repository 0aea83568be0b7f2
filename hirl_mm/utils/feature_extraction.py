"""Embed a whole data set, split across ranks, gathered and placed by ``sample_idx``."""
import copy
from typing import Callable, Optional, Sequence, Tuple

import torch
from mmengine import dist
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from torch import Tensor, nn

from .dist_utils import all_gather_rows


def build_extraction_loader(dataset_cfg: dict, batch_size: int, num_workers: int = 0,
                            seed: Optional[int] = None,
                            pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The loader :func:`extract_embeddings` needs: unshuffled and unpadded, so each rank
    gets a disjoint share and every sample is seen exactly once.

    Args:
        dataset_cfg (dict): Dataset config (copied; its pipeline should pack ``sample_idx``).
        batch_size (int): Images per batch and process.
        num_workers (int): Loader workers. Defaults to 0.
        seed (int, optional): Seed of the workers. Defaults to None.
        pin_memory (bool): Page-locked batches (faster copies to a GPU). Defaults to False.

    Returns:
        DataLoader: Built by mmengine's ``Runner.build_dataloader``.
    """
    return Runner.build_dataloader(dict(
        batch_size=batch_size, num_workers=num_workers, persistent_workers=False,
        pin_memory=pin_memory,
        dataset=copy.deepcopy(dataset_cfg),
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
        collate_fn=dict(type='default_collate')), seed=seed)


@torch.no_grad()
def extract_embeddings(model: nn.Module, dataloader: torch.utils.data.DataLoader,
                       embed: Callable[[Tensor], Tensor], normalize: bool = True,
                       show_progress: bool = True) -> Tensor:
    """Embeddings of every sample of ``dataloader.dataset``, in ``sample_idx`` order.

    Each rank embeds its share (use an unpadded sampler, e.g. ``DefaultSampler(
    round_up=False, shuffle=False)``); rows are gathered from every rank with their
    ``sample_idx`` and placed by it. Every sample must arrive exactly once
    (:func:`build_extraction_loader` builds such a loader).

    Args:
        model (nn.Module): The (unwrapped) model; its ``data_preprocessor`` prepares
            batches. It is put in eval mode during extraction and restored afterwards.
        dataloader (DataLoader): Yields ``default_collate`` batches of ``PackInputs``
            outputs whose data samples carry ``sample_idx``.
        embed (Callable): Maps a preprocessed ``[B, C, H, W]`` batch to ``[B, D]``.
        normalize (bool): L2-normalise the embeddings. Defaults to True.
        show_progress (bool): Progress bar on the main process. Defaults to True.

    Returns:
        Tensor: ``[N, D]`` float32 on every rank, on the embeddings' device.
    """
    features, indices = extract_embedding_shard(model, dataloader, embed, normalize,
                                                show_progress)
    return place_by_index(all_gather_rows(features), all_gather_rows(indices),
                          len(dataloader.dataset))


@torch.no_grad()
def extract_embedding_shard(model: nn.Module, dataloader: torch.utils.data.DataLoader,
                            embed: Callable[[Tensor], Tensor], normalize: bool = True,
                            show_progress: bool = True,
                            dtype: torch.dtype = torch.float32) -> Tuple[Tensor, Tensor]:
    """Embeddings of this rank's share of ``dataloader.dataset``, with their ``sample_idx``.

    Nothing is gathered: the sharded clustering back end works on these rows directly.

    Args:
        model (nn.Module): The (unwrapped) model; its ``data_preprocessor`` prepares
            batches. It is put in eval mode during extraction and restored afterwards.
        dataloader (DataLoader): Yields ``default_collate`` batches of ``PackInputs``
            outputs whose data samples carry ``sample_idx`` (an unpadded sampler).
        embed (Callable): Maps a preprocessed ``[B, C, H, W]`` batch to ``[B, D]``.
        normalize (bool): L2-normalise the embeddings (in float32). Defaults to True.
        show_progress (bool): Progress bar on the main process. Defaults to True.
        dtype (torch.dtype): Dtype the rows are kept in (float16 / bfloat16 halve the
            bank). Defaults to float32.

    Returns:
        tuple[Tensor, Tensor]: ``[n_rank, D]`` rows and their ``[n_rank]`` int64
        ``sample_idx``, on the embeddings' device.
    """
    was_training = model.training
    model.eval()
    features, indices = [], []
    progress = ProgressBar(len(dataloader)) if show_progress and dist.is_main_process() \
        else None
    try:
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            inputs = data['inputs']
            if isinstance(inputs, (list, tuple)):  # two-image preprocessors (BEiT):
                inputs = inputs[0]                 # [image, tokenizer image]
            embedding = _embed_fast(embed, inputs)
            if normalize:
                embedding = nn.functional.normalize(embedding, dim=1)
            features.append(embedding.to(dtype))
            indices.append(batch_sample_idx(data['data_samples'], embedding.device))
            if progress is not None:
                progress.update()
    finally:
        model.train(was_training)
    if progress is not None:
        print(flush=True)  # end the progress bar's line
    if not features:
        raise RuntimeError('This rank got no sample to embed; the data set is smaller than '
                           'the number of processes.')
    check_delivered(torch.cat(indices), dataloader)
    return torch.cat(features), torch.cat(indices)


def _embed_fast(embed: Callable[[Tensor], Tensor], inputs: Tensor) -> Tensor:
    """``embed(inputs)`` in float32; on CUDA under bf16 autocast with channels-last images
    (inference needs no more precision than AMP training has); on CPU unchanged."""
    if not inputs.is_cuda:
        return embed(inputs).float()
    if inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        return embed(inputs).float()


def batch_sample_idx(data_samples: Sequence, device: torch.device) -> Tensor:
    """The ``sample_idx`` of a batch's data samples, as an int64 tensor.

    Raises:
        ValueError: If a data sample has none, naming the setting to change.
    """
    try:
        return torch.tensor([int(s.sample_idx) for s in data_samples], dtype=torch.long,
                            device=device)
    except (AttributeError, KeyError, TypeError) as error:
        raise ValueError(
            'The extraction pipeline packs no sample_idx, which places each embedding: keep '
            "'sample_idx' in the meta_keys of its PackInputs (the default, PackInputs."
            'DEFAULT_META_KEYS) and use a data set derived from mmengine BaseDataset.'
        ) from error


def check_delivered(received: Tensor, dataloader: torch.utils.data.DataLoader) -> None:
    """Check this rank got exactly the samples its sampler asked for, naming those that
    did not come.

    mmengine's ``BaseDataset`` serves a random other sample when its pipeline returns
    None for one (e.g. ``LoadImageFromFile(ignore_empty=True)`` on a corrupt image), so a
    sample that fails to load shows up as one missing and another repeated.

    Args:
        received (Tensor): ``[n]`` the ``sample_idx`` this rank embedded.
        dataloader (DataLoader): Its loader (its sampler says what was asked for).

    Raises:
        RuntimeError: Naming the missing samples (and their files) and the likely cause.
    """
    try:
        asked = torch.as_tensor(list(dataloader.sampler), dtype=torch.long)
    except TypeError:  # a sampler that yields batches or other things: nothing to compare
        return
    got = received.cpu()
    if asked.numel() == got.numel() and torch.equal(asked.sort().values, got.sort().values):
        return
    counts = torch.bincount(got, minlength=int(max(asked.max(), got.max())) + 1)
    missing = [int(i) for i in asked if counts[i] == 0]
    dataset = dataloader.dataset
    described = []
    for idx in missing[:5]:
        try:
            path = dataset.get_data_info(idx).get('img_path')
        except Exception:  # only for the message: a data set without infos
            path = None
        described.append(f'{idx} ({path})' if path else str(idx))
    raise RuntimeError(
        f'{len(missing)} of the {asked.numel()} samples asked for were not delivered for '
        f'feature extraction (sample_idx {", ".join(described)}'
        f'{", ..." if len(missing) > 5 else ""}): the data set served other samples in '
        f'their place, which mmengine\'s BaseDataset does when a sample fails to load (its '
        f'pipeline returned None, e.g. LoadImageFromFile(ignore_empty=True) on a missing, '
        f'corrupt or truncated image). Fix or remove those files (without ignore_empty the '
        f'loading error itself is raised).')


def place_by_index(rows: Tensor, indices: Tensor, num_samples: int) -> Tensor:
    """Put ``rows[i]`` at position ``indices[i]``, checking each index comes exactly once.

    Args:
        rows (Tensor): ``[M, D]`` gathered rows.
        indices (Tensor): ``[M]`` their ``sample_idx``.
        num_samples (int): ``N``, the data set's size.

    Returns:
        Tensor: ``[N, D]``.

    Raises:
        RuntimeError: If an index is missing, repeated or out of range.
    """
    counts = torch.bincount(indices, minlength=num_samples)
    if counts.numel() != num_samples or bool((counts != 1).any()):
        missing = int((counts[:num_samples] == 0).sum())
        repeated = int((counts > 1).sum())
        raise RuntimeError(
            f'Feature extraction must see each of the {num_samples} samples exactly once '
            f'by sample_idx; {missing} are missing, {repeated} repeated and '
            f'{max(counts.numel() - num_samples, 0)} indices lie outside the data set. '
            f'Use an unpadded sampler (DefaultSampler(round_up=False)); dataset wrappers '
            f'that restart sample_idx per part (ConcatDataset) are not supported.')
    placed = rows.new_empty((num_samples, rows.shape[1]))
    placed[indices] = rows
    return placed
