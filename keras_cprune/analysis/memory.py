"""Peak live activation memory of a graph run in its topological order."""
from __future__ import annotations

import math
from dataclasses import dataclass

from keras_cprune.graph.reader import Graph


@dataclass(frozen=True)
class Peak:
    """Largest sum of live activation bytes, and the node being run when it happens.

    Attributes:
        bytes: the peak, bytes per sample.
        node: the name of the node running at the peak.
        live: names of the producers of the tensors alive at the peak.
    """

    bytes: int
    node: str
    live: tuple  # names of the producers of the tensors alive at the peak


def tensor_elements(shape: tuple) -> int:
    """Elements of one sample of a tensor; unknown (None) dimensions count as 1.

    Args:
        shape: the shape without batch, e.g. ``(28, 28, 16)``.

    Returns:
        The product of the dimensions, an `int`.
    """
    return math.prod(1 if d is None else int(d) for d in shape)


def peak_activation(graph: Graph, bytes_per_element: int = 4, shapes: dict | None = None) -> Peak:
    """Peak bytes of tensors alive at once, one sample, running nodes in ``graph.nodes`` order.

    A tensor is alive from the op that produces it (model inputs: from the start) until its last
    consumer ran; model outputs stay alive to the end. While a node runs, its inputs and outputs
    are alive together, so for a chain the peak is the largest input + output of one op.

    Args:
        graph: the model's `Graph`.
        bytes_per_element: 4 for float32 (default), 1 for int8.
        shapes: optional ``{tensor key: shape without batch}`` overriding the graph's (a pruned
            model's shapes).

    Returns:
        A `Peak`.
    """
    shapes = shapes or {}
    size = {k: tensor_elements(shapes.get(k, t.shape)) * bytes_per_element for k, t in graph.tensors.items()}
    last_use = {}
    for index, node in enumerate(graph.nodes):
        for key in node.inputs:
            last_use[key] = index
    for key in graph.outputs:
        last_use[key] = len(graph.nodes)
    live = {k: size[k] for k in graph.inputs}
    best = Peak(sum(live.values()), graph.nodes[0].name if graph.nodes else "", tuple(live))
    for index, node in enumerate(graph.nodes):
        if node.is_input:
            continue
        for key in node.outputs:
            live[key] = size[key]
        total = sum(live.values())
        if total > best.bytes:
            producers = tuple(graph.tensors[k].producer or "input" for k in live)
            best = Peak(total, node.name, producers)
        for key in node.inputs + node.outputs:
            if last_use.get(key, -1) <= index and key in live:
                del live[key]
    return best
