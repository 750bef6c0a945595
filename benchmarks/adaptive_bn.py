"""A data-driven allocation for PA and FA (issue 24, item 4), after EagleEye (Li et al., ECCV 2020).

Random layer-wise allocations that meet the budget are drawn; each is cut from a briefly trained dense model
(lowest L1 filters first), its BatchNorm statistics are recomputed on training batches (adaptive BN) and it is
scored on validation images; the best allocation is then trained from scratch like every other model.
Kept in benchmarks/ until it beats uniform width beyond the noise (docs/BENCHMARKS.md, "Accuracy at convergence").
"""
from __future__ import annotations

import time

import numpy as np

import keras

from keras_cprune import zoo
from keras_cprune.graph.dependency import build_dependencies
from keras_cprune.graph.reader import read_graph
from keras_cprune.pruning.context import PruneContext, choose_units
from keras_cprune.pruning.importance import unit_scores
from keras_cprune.pruning.rebuild import rebuild

CANDIDATES, CALIBRATION_BATCHES, SCORE_IMAGES = 40, 20, 2000  # EagleEye: 50 batches; here a CPU-sized search
DENSE_EPOCHS, MIN_KEEP = 1, 0.25  # the brief dense training; the floor of every layer (as the cost allocation's)
PRICE = {"PA": "params", "FA": "macs"}


def draw(context: PruneContext, resource: str, limit: int, rng: np.random.Generator, scores: dict) -> set | None:
    """One allocation: each group gets a random share u ~ U(0, 1) and loses ``min(s u, 1)`` of its free channels
    (lowest score first, at most down to ``MIN_KEEP``), ``s`` the least that brings ``resource`` to ``limit``;
    None when even every group at its floor does not."""
    groups = [g for g in context.deps.groups if g.prunable]
    shares = rng.uniform(0, 1, len(groups))

    def removed_at(s: float) -> set:
        removed = set()
        for group, share in zip(groups, shares):
            count = int(min(s * share, 1.0) * int((~group.pinned).sum()))
            removed |= set(choose_units(context.deps, group, scores[group.id], count, 1, removed,
                                        min_keep=MIN_KEEP).tolist())
        return removed

    cost = lambda removed: getattr(context.price(removed), resource)  # noqa: E731
    high = 1.0 / shares.min()
    if cost(removed_at(high)) > limit:
        return None
    low = 0.0
    for _ in range(14):
        middle = (low + high) / 2
        low, high = (low, middle) if cost(removed_at(middle)) <= limit else (middle, high)
    return removed_at(high)


def recalibrate(model, images: np.ndarray, batch: int) -> None:
    """Adaptive BN: every BatchNormalization's moving statistics set to the mean over ``images``' batches of the
    batch statistics (forward passes in training mode, nothing else trained)."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for k, start in enumerate(range(0, len(images), batch)):
        for layer in norms:
            layer.momentum = k / (k + 1)  # a running mean of the batches seen
        model(images[start:start + batch], training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y))


def allocate(arch: str, mode: str, limit: int, seed: int, data, train, batch: int = 128) -> tuple:
    """``(untrained model of the best allocation, details)``: ``train(model, data, epochs, seed, label)`` trains
    the brief dense model; ``details`` holds the candidates' scores and the CPU seconds of the whole search."""
    cpu = time.process_time()
    (x, y), (x_val, y_val), _ = data
    builder = zoo.ARCHITECTURES[arch]
    keras.utils.set_random_seed(seed)
    dense = builder()
    train(dense, data, DENSE_EPOCHS, seed, f"{arch}-dense brief ({mode} allocation)")
    context = PruneContext.of(dense)
    rng = np.random.default_rng(seed)
    scores = {g.id: unit_scores(context.deps, g, "l1", rng) for g in context.deps.groups if g.prunable}
    calibration = x[rng.permutation(len(x))[:CALIBRATION_BATCHES * batch]]
    best, ranked = None, []
    for _ in range(CANDIDATES):
        removed = draw(context, PRICE[mode], limit, rng, scores)
        if removed is None:
            continue
        candidate = rebuild(dense, context.deps, removed)
        recalibrate(candidate, calibration, batch)
        score = accuracy(candidate, x_val[:SCORE_IMAGES], y_val[:SCORE_IMAGES])
        ranked.append(round(score, 4))
        if best is None or score > best[0]:
            best = (score, removed)
    if best is None:
        raise ValueError(f"No random allocation of {arch} reaches {PRICE[mode]} {limit:,} with min_keep {MIN_KEEP}.")
    keras.utils.set_random_seed(seed)  # fresh weights, drawn as every other model's
    fresh = builder()
    model = rebuild(fresh, build_dependencies(read_graph(fresh)), best[1], weights="none")
    return model, {"allocation": "adaptive-bn", "candidates": len(ranked), "candidate_val_acc": ranked,
                   "best_val_acc": round(best[0], 4), "search_cpu_s": round(time.process_time() - cpu, 2)}
