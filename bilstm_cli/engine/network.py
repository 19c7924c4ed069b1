"""The recurrent networks of many runs as one computation: stacked weights, batched products.

A training *program* holds C runs ("copies"): repeats of a variant, and variants whose shapes
allow it. Each copy has its own weights; nothing is shared but the compiled program. The
weights of all copies' recurrent directions ("units": a BiLSTM copy has two, an LSTM copy one)
are stacked on a leading axis, and every time step is one batched matrix product over all of
them, so forty small models cost little more per step than one: per-op overhead, not
arithmetic, is what a small recurrent step costs on a CPU.

Layout (``D`` units, ``C`` copies, ``G`` the gate width: 4U for an LSTM cell):

- per layer: input kernels ``(D, W, G)``, recurrent kernels ``(D, U, G)``, biases;
- the head: kernels ``(C, W, K)`` and biases ``(C, K)``.

Units are ordered forward first (segment by segment), then backward. A layer's input width
``W`` is the widest of its copies' (a concat BiLSTM's output is 2U wide, the other merges U):
narrower inputs are padded with zeros and their kernels' extra rows are zero. Those rows get
zero gradients, so every optimizer leaves them at zero: the padding changes no result.

Arrays are time-major inside (``(T, D, B, ...)``): the time loop slices its leading axis. The
computation uses ``keras.ops`` only, so both backends run the same arithmetic, and it follows
Keras' layers operation by operation (``LSTMCell``, ``GRUCell``, ``SimpleRNNCell``,
``Bidirectional``, ``Normalization``, ``Dense``): a copy's weights moved into the Keras model of
:func:`bilstm_cli.model.build.build_model` give the same outputs (tested), and that model is
what a run saves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend import ops
from ..data.dataset import PER_STEP
from . import cells


@dataclass(frozen=True)
class Trunk:
    """What every copy of a program shares: the shapes of the computation.

    Args:
        cell: ``lstm``, ``gru`` or ``rnn``.
        units: recurrent units per direction.
        layers: stacked recurrent layers.
        features: input values per time step.
        num_classes: 2 (one sigmoid output) or more (softmax).
        task: ``per-step`` or ``sequence``.
        pooling: sequence task: ``last`` (final states) or ``mean`` (masked mean).
        dropout: rate after each recurrent layer (training only).
        masked: whether sequences may be shorter than the batch's ``T`` (lengths are honoured).
    """

    cell: str
    units: int
    layers: int
    features: int
    num_classes: int
    task: str
    pooling: str = "last"
    dropout: float = 0.0
    masked: bool = False

    @property
    def outputs(self) -> int:
        """Width of the head: 1 (sigmoid) for two classes, else one per class (softmax)."""
        return 1 if self.num_classes <= 2 else self.num_classes

    @property
    def returns_sequences(self) -> bool:
        """Whether the last recurrent layer returns every step (else only its final states)."""
        return self.task == PER_STEP or self.pooling == "mean"

    @property
    def collects_sequences(self) -> bool:
        """Whether any recurrent layer returns every step (an inner layer always does)."""
        return self.layers > 1 or self.returns_sequences


@dataclass(frozen=True)
class Segment:
    """The copies of one variant: its recurrent directions and how they are merged.

    Args:
        kind: ``bilstm`` (both directions, merged) or ``lstm`` (one direction).
        direction: lstm: ``forward``, ``backward`` (outputs put back in time order) or
            ``backward-unaligned`` (the tutorial's mistake: left reversed).
        merge: bilstm: ``concat``, ``sum``, ``mul`` or ``ave``.
        copies: how many runs of this variant the program trains.
    """

    kind: str
    direction: str | None
    merge: str | None
    copies: int

    @property
    def directions(self) -> tuple[str, ...]:
        """The units of one copy, in Keras' order (forward layer first)."""
        if self.kind == "bilstm":
            return ("forward", "backward")
        return ("backward" if self.direction != "forward" else "forward",)

    def width(self, units: int) -> int:
        """Width of this variant's merged output: 2U for concat, else U."""
        return 2 * units if self.merge == "concat" else units


class Network:
    """The stacked computation of a program's copies.

    Args:
        trunk: the shared shapes.
        segments: the variants, in copy order (copy indices run through the segments).
        scan: the time loop, ``scan(step, carry, xs) -> (carry, every step's carry)`` with
            ``step(carry, x_t) -> (carry, carry)`` over the leading axis of ``xs`` (default:
            ``keras.ops.scan``; a backend may pass a faster or XLA-friendlier one, e.g.
            :func:`unrolled_scan`). A layer that returns only its final states gives a step
            that outputs None (and has ``collects_outputs = False``): the scan returns
            ``(carry, None)`` and collects nothing (``jax.lax.scan`` does this by itself).
    """

    def __init__(self, trunk: Trunk, segments: list[Segment], scan=None):
        if not segments or any(segment.copies < 1 for segment in segments):
            raise ValueError(f"a program needs at least one copy. Received: segments={segments}")
        self.trunk, self.segments = trunk, list(segments)
        self.cell = cells.for_name(trunk.cell)
        self.scan = scan or ops.scan
        self.copies = sum(segment.copies for segment in segments)
        first_copy = np.cumsum([0] + [segment.copies for segment in segments])
        self.spans = [(int(first_copy[i]), int(first_copy[i + 1])) for i in range(len(segments))]
        # units: forward ones (segment by segment), then backward ones; the copy of each
        forward = [c for i, s in enumerate(segments) if "forward" in s.directions for c in range(*self.spans[i])]
        backward = [c for i, s in enumerate(segments) if "backward" in s.directions for c in range(*self.spans[i])]
        self.forward_owner = np.array(forward, np.int32)
        self.backward_owner = np.array(backward, np.int32)
        self.unit_owner = np.concatenate([self.forward_owner, self.backward_owner]).astype(np.int32)
        self.units_total = len(self.unit_owner)
        self.merged_width = max(segment.width(trunk.units) for segment in segments)

    # ------------------------------------------------------------------------ layout

    def input_width(self, layer: int) -> int:
        return self.trunk.features if layer == 0 else self.merged_width

    def parameter_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Name and shape of every parameter array, in state order."""
        trunk, gates = self.trunk, self.cell.gates * self.trunk.units
        shapes = []
        for layer in range(trunk.layers):
            shapes.append((f"layer{layer}/kernel", (self.units_total, self.input_width(layer), gates)))
            shapes.append((f"layer{layer}/recurrent_kernel", (self.units_total, trunk.units, gates)))
            shapes.append((f"layer{layer}/bias", (self.units_total, *self.cell.bias_shape(trunk.units))))
        shapes.append(("head/kernel", (self.copies, self.merged_width, trunk.outputs)))
        shapes.append(("head/bias", (self.copies, trunk.outputs)))
        return shapes

    def parameter_owners(self) -> list[np.ndarray]:
        """For every parameter array, the copy that owns each entry of its leading axis."""
        copies = np.arange(self.copies, dtype=np.int32)
        return [self.unit_owner] * (3 * self.trunk.layers) + [copies, copies]

    def segment_of(self, copy: int) -> int:
        return next(index for index, (first, end) in enumerate(self.spans) if first <= copy < end)

    def copy_rows(self, copy: int) -> list[np.ndarray]:
        """For every parameter array, the rows that hold ``copy``'s weights (forward unit first)."""
        return [np.flatnonzero(owner == copy) for owner in self.parameter_owners()]

    # ------------------------------------------------------------------------ computation

    def forward(self, params, x, lengths, standardization=None, dropout_masks=None, fused_gates=False):
        """Predictions of every copy: ``(C, B, T, 1|K)`` per step, ``(C, B, 1|K)`` per sequence.

        Args:
            params: arrays in :meth:`parameter_shapes` order.
            x: ``(C, B, T, F)`` float32: each copy's batch.
            lengths: ``(C, B)`` int32 (ignored unless ``trunk.masked``).
            standardization: ``(mean, variance)`` of ``(F,)``, or None.
            dropout_masks: per layer, a keep-mask ``(T, C, B, W)`` (or ``(C, B, W)`` for a last
                layer without sequences) already scaled by 1/(1-rate); None: no dropout.
            fused_gates: compute an LSTM's gates with one sigmoid (see :meth:`LSTM.step`).
        """
        trunk = self.trunk
        if standardization is not None:
            mean, variance = standardization
            x = ops.divide(ops.subtract(x, mean), ops.maximum(ops.sqrt(variance), 1e-7))
        inputs = ops.transpose(x, (2, 0, 1, 3))  # (T, C, B, F)
        steps = inputs.shape[0]
        mask = None
        if trunk.masked:
            positions = ops.arange(steps, dtype="int32")[:, None, None]
            mask = ops.less(positions, ops.expand_dims(lengths, 0))  # (T, C, B)
        for layer in range(trunk.layers):
            kernel, recurrent, bias = params[3 * layer : 3 * layer + 3]
            sequences = layer < trunk.layers - 1 or trunk.returns_sequences
            outputs = self._layer(inputs, mask, kernel, recurrent, bias, sequences, fused_gates)
            if dropout_masks is not None:
                outputs = outputs * dropout_masks[layer]
            inputs = outputs
        kernel, bias = params[-2], params[-1]
        if trunk.task != PER_STEP and trunk.pooling == "mean":
            inputs = _masked_mean(inputs, mask)
        if len(inputs.shape) == 4:  # a label per step: (T, C, B, W) -> (C, B, T, K)
            logits = ops.einsum("tcbw,cwk->cbtk", inputs, kernel) + bias[:, None, None, :]
        else:
            logits = ops.einsum("cbw,cwk->cbk", inputs, kernel) + bias[:, None, :]
        return ops.sigmoid(logits) if trunk.outputs == 1 else ops.softmax(logits, axis=-1)

    def _layer(self, inputs, mask, kernel, recurrent, bias, sequences: bool, fused_gates: bool = False):
        """One recurrent layer for every copy: ``inputs`` ``(T, C, B, W)`` -> merged outputs
        ``(T, C, B, W')`` (or the merged final states ``(C, B, W')``)."""
        unit_inputs, unit_mask = self._unit_view(inputs), None
        if mask is not None:
            unit_mask = self._unit_view(mask)
        outputs, final = self._recurrence(unit_inputs, unit_mask, kernel, recurrent, bias, sequences, fused_gates)
        forward_count = len(self.forward_owner)
        if sequences:
            forward, backward = outputs[:, :forward_count], ops.flip(outputs[:, forward_count:], axis=0)
            time_axis = 1
        else:
            forward, backward = final[:forward_count], final[forward_count:]
            time_axis = 0
        merged = []
        forward_at = backward_at = 0
        for segment, (first, end) in zip(self.segments, self.spans):
            count = end - first
            parts = []
            if "forward" in segment.directions:
                parts.append(
                    forward[:, forward_at : forward_at + count]
                    if time_axis
                    else forward[forward_at : forward_at + count]
                )
                forward_at += count
            if "backward" in segment.directions:
                part = (
                    backward[:, backward_at : backward_at + count]
                    if time_axis
                    else backward[backward_at : backward_at + count]
                )
                if segment.direction == "backward-unaligned" and sequences:
                    part = ops.flip(part, axis=0)  # the tutorial's mistake: outputs left in reversed order
                parts.append(part)
                backward_at += count
            merged.append(self._pad(_merge(segment, parts)))
        return ops.concatenate(merged, axis=time_axis) if len(merged) > 1 else merged[0]

    def _unit_view(self, per_copy):
        """Each unit's view of its copy's ``(T, C, ...)`` array: forward units as they are,
        backward units reversed in time (Keras' ``go_backwards``: the padded sequence, reversed)."""
        parts = []
        if len(self.forward_owner):
            parts.append(_take_copies(per_copy, self.forward_owner, self.copies))
        if len(self.backward_owner):
            parts.append(ops.flip(_take_copies(per_copy, self.backward_owner, self.copies), axis=0))
        return ops.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def _pad(self, merged):
        """Zero-pad a segment's merged output to the program's widest."""
        missing = self.merged_width - merged.shape[-1]
        if missing == 0:
            return merged
        padding = [(0, 0)] * (len(merged.shape) - 1) + [(0, missing)]
        return ops.pad(merged, padding)

    def _recurrence(self, inputs, mask, kernel, recurrent, bias, sequences: bool, fused_gates: bool = False):
        """The cell over time for all units: ``inputs`` ``(T, D, B, W)``; returns every step's
        output ``(T, D, B, U)`` (when ``sequences``) and the final output ``(D, B, U)``."""
        cell = self.cell
        state = cell.initial_state(inputs.shape[1], inputs.shape[2], self.trunk.units, inputs.dtype)

        def step(carry, slices):
            x_t, mask_t = slices
            new_state = cell.step(cell.project(x_t, kernel), carry, recurrent, bias, fused_gates)
            if mask is not None:
                keep = mask_t[:, :, None]
                new_state = tuple(ops.where(keep, new, old) for new, old in zip(new_state, carry))
            # every step's whole state (Keras' TensorFlow scan wants the carry's structure); the
            # outputs are its first part. A layer that returns only its final states collects
            # nothing: a while loop would otherwise write (and differentiate) every step's state
            return new_state, (new_state if sequences else None)

        step.collects_outputs = sequences  # for a scan that must know before it traces the step
        mask_slices = mask if mask is not None else ops.zeros((inputs.shape[0],), "bool")
        state, outputs = self.scan(step, state, (inputs, mask_slices))
        return (outputs[0] if sequences else None), state[0]

    # ------------------------------------------------------------------------ dropout

    def dropout_shapes(self, batch: int, steps: int) -> list[tuple[int, ...]]:
        """One copy's dropout mask shape per layer (its merged output): ``(T, B, W)``, or
        ``(B, W)`` for a last layer that returns only its final states."""
        shapes = []
        for layer in range(self.trunk.layers):
            sequences = layer < self.trunk.layers - 1 or self.trunk.returns_sequences
            shapes.append((steps, batch, self.merged_width) if sequences else (batch, self.merged_width))
        return shapes


def unrolled_scan(step, carry, xs):
    """``keras.ops.scan``'s contract as straight-line code: one copy of the step per time step
    (the leading axis of ``xs`` must have a static length)."""
    outputs = []
    for t in range(xs[0].shape[0]):
        carry, output = step(carry, tuple(x[t] for x in xs))
        outputs.append(output)
    if outputs[0] is None:  # a step that outputs nothing (see Network._recurrence)
        return carry, None
    return carry, tuple(ops.stack(parts) for parts in zip(*outputs))


def _take_copies(per_copy, owners: np.ndarray, copies: int):
    """``per_copy[:, owners]`` (a plain slice when the owners are all copies in order)."""
    if len(owners) == copies and (owners == np.arange(copies)).all():
        return per_copy
    first = int(owners[0])
    if (owners == np.arange(first, first + len(owners))).all():
        return per_copy[:, first : first + len(owners)]
    return ops.take(per_copy, owners, axis=1)


def _merge(segment: Segment, parts: list):
    """Bidirectional's merge of the forward and backward outputs (as Keras computes it)."""
    if segment.kind != "bilstm":
        return parts[0]
    forward, backward = parts
    if segment.merge == "concat":
        return ops.concatenate([forward, backward], axis=-1)
    if segment.merge == "sum":
        return forward + backward
    if segment.merge == "ave":
        return (forward + backward) / 2
    return forward * backward


def _masked_mean(hidden, mask):
    """GlobalAveragePooling1D with a mask: the mean over each sequence's real steps.
    ``hidden`` ``(T, C, B, W)`` -> ``(C, B, W)``."""
    if mask is None:
        return ops.mean(hidden, axis=0)
    weights = ops.cast(mask, hidden.dtype)[..., None]
    return ops.sum(hidden * weights, axis=0) / ops.sum(weights, axis=0)
