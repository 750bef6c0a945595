"""Layer-level complexity: parameters, MACs/FLOPs and activation memory, with shares.

Conventions: one MAC is a multiply-accumulate of a Conv/Dense/Depthwise kernel; FLOPs = 2 x MACs.
BatchNormalization, activations, pooling and element-wise ops count 0 MACs (the TFLite converter
folds BatchNorm into the preceding op). LSTM/GRU/SimpleRNN count their gate kernels' MACs per
timestep times the timesteps (gate non-linearities: 0). Activation memory is per sample (a recurrent
layer's output is one step, or every step with ``return_sequences``). int8 weight bytes are
1 byte per kernel element + 4 bytes (int32) per bias + 4 bytes (float32 scale) per output channel
(recurrent layers: no per-channel scales).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields

from keras_cprune.graph.reader import Graph, read_graph
from keras_cprune.analysis.memory import peak_activation, tensor_elements
from keras_cprune.graph.layers import TABLE, registered_spec, spec_for



@dataclass(frozen=True)
class LayerComplexity:
    """Complexity of one layer call; shares are fractions (0..1) of the model totals.

    Attributes:
        name: the layer's name (a shared layer has one row per call).
        class_name: the Keras layer class, e.g. ``"Conv2D"``.
        output_shape: shape of its (first) output, without batch.
        params: weights counted at the layer's first call (later calls: 0).
        macs: multiply-accumulates per sample (``flops`` = 2 x ``macs``).
        weight_bytes_f32: ``4 * params``.
        weight_bytes_int8: bytes of the weights once converted to int8 (see the module docstring).
        act_bytes_f32: bytes of its outputs per sample in float32.
        act_bytes_int8: bytes of its outputs per sample in int8.
        analysed: False for a layer type without known formulas (weights counted, 0 MACs).
        param_share: fraction of the model's parameters.
        flops_share: fraction of the model's MACs (= of its FLOPs).
        memory_share: fraction of the model's summed activation bytes.

    Example:

    ```python
    report = keras_cprune.analyze(model)
    row = report.layer("conv0")
    print(row.macs, f"{row.flops_share:.0%}")
    ```
    """

    name: str
    class_name: str
    output_shape: tuple
    params: int
    macs: int
    weight_bytes_f32: int
    weight_bytes_int8: int
    act_bytes_f32: int
    act_bytes_int8: int
    analysed: bool
    param_share: float = 0.0
    flops_share: float = 0.0
    memory_share: float = 0.0

    @property
    def flops(self) -> int:
        """Floating-point operations per sample: 2 x ``macs``."""
        return 2 * self.macs

    def to_dict(self) -> dict:
        """The fields and ``flops`` as a JSON-ready dict (``output_shape`` a list)."""
        return {**asdict(self), "output_shape": list(self.output_shape), "flops": self.flops}


@dataclass(frozen=True)
class ComplexityReport:
    """Per-layer complexity of a model and its totals (bytes per sample), as `analyze` returns it.

    Attributes:
        model_name: the Keras model's name.
        layers: one `LayerComplexity` per layer call, in execution order.
        params: total parameters.
        macs: total multiply-accumulates per sample (``flops`` = 2 x ``macs``).
        weight_bytes_f32: total weight bytes in float32.
        weight_bytes_int8: total weight bytes once converted to int8.
        act_bytes_f32: summed output bytes of all layers per sample, float32.
        act_bytes_int8: the same in int8.
        peak_act_bytes_f32: largest sum of float32 activation bytes alive at once, running the
            layers in order (the activation-memory peak).
        peak_act_bytes_int8: the same in int8.
        peak_node: the layer running at the int8 peak.

    Example:

    ```python
    report = keras_cprune.analyze(model)
    report.summary()                         # a table like model.summary()
    print(report.macs, report.peak_act_bytes_int8)
    open("complexity.csv", "w").write(report.to_csv())
    ```
    """

    model_name: str
    layers: tuple
    params: int
    macs: int
    weight_bytes_f32: int
    weight_bytes_int8: int
    act_bytes_f32: int
    act_bytes_int8: int
    peak_act_bytes_f32: int
    peak_act_bytes_int8: int
    peak_node: str

    @property
    def flops(self) -> int:
        """Floating-point operations per sample: 2 x ``macs``."""
        return 2 * self.macs

    @property
    def not_analysed(self) -> list[str]:
        """Names of the layers without known formulas (weights counted, 0 MACs)."""
        return [layer.name for layer in self.layers if not layer.analysed]

    def layer(self, name: str) -> LayerComplexity:
        """The row of the layer called ``name`` (its first call); `StopIteration` if none."""
        return next(layer for layer in self.layers if layer.name == name)

    def __repr__(self) -> str:
        return (
            f"ComplexityReport(model={self.model_name!r}, layers={len(self.layers)}, params={self.params:,}, "
            f"MACs={self.macs:,}, peak_act_int8={self.peak_act_bytes_int8:,} B)"
        )

    def to_dict(self) -> dict:
        """Totals, ``flops``, ``not_analysed`` and ``layers`` (each `LayerComplexity.to_dict`)."""
        totals = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "layers"}
        return {**totals, "flops": self.flops, "not_analysed": self.not_analysed,
                "layers": [layer.to_dict() for layer in self.layers]}

    def to_json(self, **kwargs) -> str:
        """`to_dict` as JSON; ``kwargs`` go to ``json.dumps`` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def to_csv(self) -> str:
        """One CSV row per layer (the `LayerComplexity.to_dict` columns, shapes as ``28x28x16``)."""
        rows = [layer.to_dict() for layer in self.layers]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "output_shape": "x".join(str(d) for d in row["output_shape"])})
        return out.getvalue()

    def summary(self, print_fn=print) -> str:
        """Print (and return) a table like ``model.summary()``.

        Args:
            print_fn: called with the whole table; None prints nothing. Default: `print`.

        Returns:
            The table as a string.
        """
        head = f"{'Layer (type)':<38}{'Output shape':<18}{'Params':>11}{'MACs':>14}{'Act int8 B':>12}  P%    F%    M%"
        lines = [f'Complexity of "{self.model_name}"', "-" * len(head), head, "-" * len(head)]
        for r in self.layers:
            label = f"{r.name} ({r.class_name}){'' if r.analysed else ' *'}"
            shape = "x".join("?" if d is None else str(d) for d in r.output_shape)
            lines.append(
                f"{label[:37]:<38}{shape[:17]:<18}{r.params:>11,}{r.macs:>14,}{r.act_bytes_int8:>12,}"
                f"{100 * r.param_share:>6.1f}{100 * r.flops_share:>6.1f}{100 * r.memory_share:>6.1f}"
            )
        lines += [
            "-" * len(head),
            f"Total params: {self.params:,}  ({self.weight_bytes_f32:,} B float32, {self.weight_bytes_int8:,} B int8)",
            f"Total MACs: {self.macs:,}  (FLOPs = 2 x MACs = {self.flops:,})",
            f"Peak activation memory: {self.peak_act_bytes_int8:,} B int8 / {self.peak_act_bytes_f32:,} B float32"
            f" at {self.peak_node!r}",
        ]
        if self.not_analysed:
            lines.append(f"* not analysed (weights counted, no MACs): {', '.join(self.not_analysed)}")
        text = "\n".join(lines)
        if print_fn:
            print_fn(text)
        return text

    def plot(self, path: str, top: int = 25) -> str:
        """Save horizontal bars of the layers' parameter, FLOPs and memory shares as a PNG, 1,200 px
        wide: the layers with a share, past ``top`` the ``top`` largest and an "other" bar for the
        rest; the layer at the activation-memory peak in red (see `plots.plot_layer_shares`).

        Args:
            path: the PNG file to write.
            top: most layers shown by name; the rest are summed in one "other" bar.

        Returns:
            ``path``.
        """
        from keras_cprune.plots import plot_layer_shares

        return plot_layer_shares(self, path, top)


def analyze(model, input_shape=None) -> ComplexityReport:
    """Complexity of every layer of a built Functional/Sequential Keras 3 or tf_keras model.

    Parameters, MACs (FLOPs = 2 x MACs), weight bytes (float32 and int8), output activation
    bytes per sample and each layer's share of the totals; the peak of activation memory alive
    at once. Nested models are flattened; the model is not modified.

    Args:
        model: a built Functional or Sequential `keras.Model` (Keras 3 or tf_keras).
        input_shape: input shape without batch, e.g. ``(96, 96, 3)``, to fix free input dimensions
            (``keras.Input((None, None, 3))``). Default None: the model's declared input shape.

    Returns:
        A `ComplexityReport`.

    Raises:
        ModelError: the model is not built, is subclassed, or has free input dimensions and no
            ``input_shape``.

    Example:

    ```python
    from keras_cprune.zoo import vgg

    report = keras_cprune.analyze(vgg())
    report.summary()
    report.plot("layers.png")
    ```
    """
    return report_from_graph(read_graph(model, input_shape=input_shape))


def report_from_graph(graph: Graph, shapes: dict | None = None) -> ComplexityReport:
    """`ComplexityReport` of ``graph``, optionally with tensor shapes overridden by key."""
    shapes = shapes or {}
    seen_layers: set[int] = set()
    rows = []
    for node in graph.nodes:
        if node.is_input:
            continue
        first_call = id(node.layer) not in seen_layers
        seen_layers.add(id(node.layer))
        rows.append(_layer_complexity(graph, node, shapes, first_call))
    totals = {key: sum(getattr(r, key) for r in rows) for key in
              ("params", "macs", "weight_bytes_f32", "weight_bytes_int8", "act_bytes_f32", "act_bytes_int8")}
    rows = [_with_shares(r, totals) for r in rows]
    peak32 = peak_activation(graph, 4, shapes)
    peak8 = peak_activation(graph, 1, shapes)
    return ComplexityReport(graph.model_name, tuple(rows), **totals, peak_act_bytes_f32=peak32.bytes,
                            peak_act_bytes_int8=peak8.bytes, peak_node=peak8.node)


def _layer_complexity(graph: Graph, node, shapes: dict, first_call: bool) -> LayerComplexity:
    in_shapes = [shapes.get(k, graph.tensors[k].shape) for k in node.inputs]
    out_shapes = [shapes.get(k, graph.tensors[k].shape) for k in node.outputs]
    spec = spec_for(node, in_shapes, out_shapes)
    analysed = spec.params is not None and None not in sum(map(tuple, in_shapes + out_shapes), ())
    if analysed:
        params = spec.params(node.attrs, in_shapes, out_shapes)
        macs = spec.macs(node.attrs, in_shapes, out_shapes)
    else:
        params, macs = sum(tensor_elements(w.shape) for w in getattr(node.layer, "weights", [])), 0
    params = params if first_call else 0
    act = sum(tensor_elements(s) for s in out_shapes)
    return LayerComplexity(
        node.name, node.class_name, out_shapes[0] if out_shapes else (), params, macs,
        weight_bytes_f32=4 * params, weight_bytes_int8=_int8_bytes(node, params, out_shapes),
        act_bytes_f32=4 * act, act_bytes_int8=act, analysed=analysed,
    )


def _int8_bytes(node, params: int, out_shapes: list) -> int:
    base = registered_spec(type(node.layer)) or TABLE.get(node.class_name)
    if node.class_name == "BatchNormalization":
        return 0  # folded into the preceding op by the converter
    if not params:
        return 0  # a shared layer's later calls: its weights were counted at the first
    if base is not None and base.biases is not None:  # recurrent: int8 kernels, int32 biases
        return params + 3 * base.biases(node.attrs)
    if base is None or base.role not in ("produce", "depthwise"):
        return params
    channels = out_shapes[0][-1]
    bias = channels if node.attrs.get("use_bias", True) else 0
    return (params - bias) + 4 * bias + 4 * channels


def _with_shares(row: LayerComplexity, totals: dict) -> LayerComplexity:
    def share(value, total):
        return value / total if total else 0.0

    return LayerComplexity(**{
        **{f.name: getattr(row, f.name) for f in fields(row)},
        "param_share": share(row.params, totals["params"]),
        "flops_share": share(row.macs, totals["macs"]),
        "memory_share": share(row.act_bytes_f32, totals["act_bytes_f32"]),
    })
