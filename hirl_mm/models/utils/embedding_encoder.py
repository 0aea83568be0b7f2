"""The embedding HIRL trains and clusters: an encoder's backbone output, or its neck's.

The HIRL reference trains its semantic heads on, and clusters, the output of the SSL
method's projection head (mmpretrain's *neck*); ``embedding='backbone'`` keeps the pooled
backbone as an option. :class:`EmbeddingEncoder` gives that embedding two ways:

- during the wrapped algorithm's ``loss``, from the recorded calls of its own backbone and
  neck (no second forward; the graph reaches the neck and the backbone);
- for clustering, by calling backbone (+ neck) on eval-transform images.

Necks take a backbone's output in one of two layouts, both found without per-method code:
``'output'``, the backbone's output itself (``neck(backbone(x))``: SimCLR, MoCo, BYOL,
SimSiam, Barlow Twins, and every momentum encoder built as ``Sequential(backbone, neck)``),
or ``'list'``, a list of backbone outputs, one per crop resolution, whose rows the neck
concatenates in order (``neck([backbone(x_224), backbone(x_96)])``: SwAV).

On ViTs two more embeddings exist: ``'backbone'`` is the final-norm [CLS] token (what
mmpretrain's ViT outputs, or the first of its tokens), and ``'patch_mean'`` the mean of the
final-norm patch tokens, read off the final norm's calls (the HIRL reference's
``vit_cls`` / ``vit_mean``).
"""
import inspect
from typing import Any, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from .backbone_capture import (BackboneCall, locate_view, record_calls_of, select_rows,
                               view_not_found_error)
from .embedding import backbone_embedding

EMBEDDINGS = ('neck', 'backbone', 'patch_mean')
NECK_INPUT_LAYOUTS = ('output', 'list')

# Layers whose width is the width of what they output.
_WIDTH_ATTRS = ((nn.Linear, 'out_features'), (nn.modules.conv._ConvNd, 'out_channels'),
                (nn.modules.batchnorm._NormBase, 'num_features'),
                (nn.GroupNorm, 'num_channels'))


def infer_output_width(module: nn.Module) -> Optional[int]:
    """The width of ``module``'s output, read off its last layer with a known width.

    The last ``Linear`` / conv / norm layer in registration order decides (a projector's
    final ``Linear`` or the BatchNorm after it, a ResNet's last block norm, a ViT's final
    LayerNorm). ``None`` when the module has no such layer.

    Args:
        module (nn.Module): A backbone or a neck.

    Returns:
        int | None: The width, or None if it cannot be read off statically.
    """
    for layer in reversed(list(module.modules())):
        if isinstance(layer, nn.LayerNorm):
            return int(layer.normalized_shape[-1])
        for cls, attr in _WIDTH_ATTRS:
            if isinstance(layer, cls):
                return int(getattr(layer, attr))
    return None


def _last_tensor(obj: Any) -> Optional[Tensor]:
    """The last tensor of a (nested) output: what mmpretrain necks read of a backbone's."""
    while isinstance(obj, (list, tuple)) and len(obj) > 0:
        obj = obj[-1]
    return obj if isinstance(obj, Tensor) else None


def _is_backbone_output(candidate: Any, backbone_output: Any) -> bool:
    """Whether ``candidate`` is (by identity) the backbone's output or its last tensor."""
    return candidate is backbone_output or (
        isinstance(candidate, Tensor) and candidate is _last_tensor(backbone_output))


def locate_in_neck_input(neck_input: Any,
                         backbone_output: Any) -> Optional[Tuple[str, int, int]]:
    """Where a backbone call's output sits among the rows of a neck call's input.

    Args:
        neck_input (Any): The neck's first positional argument in one call.
        backbone_output (Any): The output of one backbone call.

    Returns:
        tuple | None: ``(layout, row offset, total rows of the neck input)``, or ``None``
        when this neck call did not receive that backbone output.
    """
    if _is_backbone_output(neck_input, backbone_output):
        return 'output', 0, _last_tensor(backbone_output).shape[0]
    if not isinstance(neck_input, (list, tuple)):
        return None
    offset, found = 0, None
    for element in neck_input:
        last = _last_tensor(element)
        if last is None:
            return None
        if found is None and _is_backbone_output(element, backbone_output):
            found = offset
        offset += last.shape[0]
    return None if found is None else ('list', found, offset)


def call_unmasked(backbone: nn.Module, inputs: Tensor) -> Any:
    """``backbone(inputs)``, unmasked: masked-image-modelling backbones whose
    ``forward(x, mask)`` requires the mask (mmpretrain's BEiT) get ``mask=None``.

    Args:
        backbone (nn.Module): Any backbone.
        inputs (Tensor): ``[B, C, H, W]`` images.

    Returns:
        Any: The backbone's output.
    """
    mask = inspect.signature(backbone.forward).parameters.get('mask')
    if mask is not None and mask.default is inspect.Parameter.empty:
        return backbone(inputs, mask=None)
    return backbone(inputs)


def final_token_norm(backbone: nn.Module) -> nn.Module:
    """The module that outputs a ViT's final-norm tokens (``[B, L, C]``).

    Args:
        backbone (nn.Module): An mmpretrain ``VisionTransformer`` (or subclass) built with
            ``final_norm=True``.

    Returns:
        nn.Module: Its final LayerNorm (``ln1``).

    Raises:
        ValueError: If the backbone has no such norm (names the fix).
    """
    norm = getattr(backbone, 'ln1', None) if getattr(backbone, 'final_norm', False) else None
    if not isinstance(norm, nn.Module) or not hasattr(backbone, 'num_extra_tokens'):
        raise ValueError(f'embedding="patch_mean" needs a ViT backbone whose final norm '
                         f'outputs all tokens (mmpretrain VisionTransformer with '
                         f'final_norm=True); {type(backbone).__name__} has none. Use '
                         f'embedding="backbone" or "neck".')
    return norm


class EmbeddingEncoder:
    """A backbone, and the neck applied to its output when ``embedding='neck'``.

    Not an ``nn.Module``: it only refers to the algorithm's own modules, so nothing is
    registered twice in the state dict. With ``token_norm`` (``embedding='patch_mean'``)
    the embedding is the mean of a ViT's final-norm patch tokens, read off that norm's
    output whatever the backbone's ``out_type``.

    Args:
        backbone (nn.Module): The encoder's backbone.
        neck (nn.Module, optional): Its neck (projector); None for ``'backbone'``.
        neck_input_layout (str, optional): ``'output'`` or ``'list'`` (see module doc);
            None when not known yet (found from the training calls or by a probe).
        token_norm (nn.Module, optional): A ViT's final norm (:func:`final_token_norm`)
            for the mean-patch-token embedding; exclusive with ``neck``.
    """

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module] = None,
                 neck_input_layout: Optional[str] = None,
                 token_norm: Optional[nn.Module] = None) -> None:
        if neck_input_layout not in (None, *NECK_INPUT_LAYOUTS):
            raise ValueError(f'neck_input_layout={neck_input_layout!r} is not one of '
                             f'{NECK_INPUT_LAYOUTS}.')
        if neck is not None and token_norm is not None:
            raise ValueError('An embedding reads either the neck or the patch tokens.')
        self.backbone = backbone
        self.neck = neck
        self.neck_input_layout = neck_input_layout
        self.token_norm = token_norm

    @property
    def modules(self) -> List[nn.Module]:
        """The modules whose calls :meth:`view_embedding` reads, in that order."""
        second = self.neck if self.neck is not None else self.token_norm
        return [self.backbone] + ([second] if second is not None else [])

    def _patch_mean(self, tokens: Tensor) -> Tensor:
        return tokens[:, int(self.backbone.num_extra_tokens):].mean(dim=1)

    def embed(self, inputs: Tensor) -> Tensor:
        """Un-normalised ``[B, D]`` embeddings of a batch of images (for clustering).

        Args:
            inputs (Tensor): ``[B, C, H, W]`` preprocessed images.

        Returns:
            Tensor: The pooled backbone output, the neck's output on it, or the mean
            patch token.
        """
        if self.token_norm is not None:
            with record_calls_of([self.token_norm]) as (calls, ):
                self._call_backbone(inputs)
            return self._patch_mean(calls[-1][1])
        output = self._call_backbone(inputs)
        if self.neck is not None:
            output = self._call_neck(output, inputs.shape[0])
        return backbone_embedding(output)

    def _call_backbone(self, inputs: Tensor) -> Any:
        return call_unmasked(self.backbone, inputs)

    def _call_neck(self, backbone_output: Any, rows: int) -> Any:
        """Call the neck in its layout; when unknown, find the one that works (once)."""
        layouts = ([self.neck_input_layout] if self.neck_input_layout is not None
                   else list(NECK_INPUT_LAYOUTS))
        failures = []
        for layout in layouts:
            try:
                output = self.neck(backbone_output if layout == 'output'
                                   else [backbone_output])
                out_rows = backbone_embedding(output).shape[0]
            except Exception as error:  # noqa: BLE001 - reported below if no layout fits
                failures.append(f'{layout}: {type(error).__name__}: {error}')
                continue
            if out_rows == rows:
                self.neck_input_layout = layout
                return output
            failures.append(f'{layout}: {out_rows} output rows for {rows} images')
        raise RuntimeError(
            f'HIRL cannot call the neck {type(self.neck).__name__} on the backbone\'s output '
            'to embed images for clustering; tried neck(backbone(x)) and '
            'neck([backbone(x)]): ' + '; '.join(failures) + '. Use embedding="backbone" '
            'or give the model a neck that maps each image to one row.')

    def view_embedding(self, calls: Sequence[List[BackboneCall]],
                       view: Tensor) -> Optional[Tensor]:
        """The embedding rows of ``view`` from calls recorded during the algorithm's loss.

        Args:
            calls (Sequence[list]): Recorded calls, one list per module of
                :attr:`modules` (backbone first, then neck).
            view (Tensor): ``[B, C, H, W]``, the view as the algorithm received it.

        Returns:
            Tensor | None: ``[B, D]`` un-normalised embeddings in the order of ``view``'s
            rows, with their graph; ``None`` when no backbone call holds the view.

        Raises:
            RuntimeError: If the backbone saw the view but the neck never received that
                output in a layout it can follow.
        """
        found = locate_view(calls[0], view)
        if found is None:
            return None
        call_index, idx = found
        backbone_output = calls[0][call_index][1]
        if self.token_norm is not None:
            if len(calls[1]) != len(calls[0]):
                raise RuntimeError(
                    f'The ViT\'s final norm ran {len(calls[1])} times in '
                    f'{len(calls[0])} backbone calls; embedding="patch_mean" needs one '
                    'final norm per forward. Use embedding="backbone" or "neck".')
            return self._patch_mean(calls[1][call_index][1])[idx]
        if self.neck is None:
            return backbone_embedding(select_rows(backbone_output, idx))
        for neck_input, neck_output in calls[1]:
            where = locate_in_neck_input(neck_input, backbone_output)
            if where is None:
                continue
            layout, offset, total = where
            embedding = backbone_embedding(neck_output)
            if embedding.shape[0] != total:
                raise RuntimeError(
                    f'The neck {type(self.neck).__name__} returned {embedding.shape[0]} rows '
                    f'for {total} input rows; embedding="neck" needs one output row per '
                    f'image. Use embedding="backbone" for this algorithm.')
            self.neck_input_layout = layout
            return embedding[idx + offset]
        raise RuntimeError(
            f'The backbone saw the view of shape {tuple(view.shape)}, but the neck '
            f'{type(self.neck).__name__} never received that backbone output, neither as '
            f'it is (neck(backbone(x))) nor as an element of a list (neck([backbone(x), '
            f'...])); embedding="neck" cannot follow this algorithm\'s layout. Use '
            f'embedding="backbone", or override `loss` in a subclass of the HIRL algorithm.')

    def find_view_embedding(self, calls: Sequence[List[BackboneCall]], view: Tensor) -> Tensor:
        """:meth:`view_embedding`, raising a clear error when the view is not found."""
        embedding = self.view_embedding(calls, view)
        if embedding is None:
            raise view_not_found_error(calls[0], view)
        return embedding
