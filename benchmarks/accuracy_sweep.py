"""The accuracy protocol of docs/BENCHMARKS.md ("Accuracy protocol"): one JSON per trained model.

Fashion-MNIST, 55,000 training / 5,000 validation images (a fixed split of the training set), the
10,000 test images only for the final figures. Every configuration <arch>-<method>-<budget>-seed<k>
is trained with the same optimizer, schedule and epochs and written to OUT/<name>.json; files that
exist are skipped, so an interrupted sweep resumes where it stopped.

    python benchmarks/accuracy_sweep.py [--epochs N] [--seeds 0,1,2] [--only vgg,resnet-PA] [--out docs/results]
    python benchmarks/accuracy_sweep.py --list                   # configurations, done or to do
    python benchmarks/accuracy_sweep.py --report [FILE]          # markdown table from the JSON files (accuracy_report)
    python benchmarks/accuracy_sweep.py --plot PNG               # accuracy per method, mean ± sd over seeds
    python benchmarks/accuracy_sweep.py --measure-speed          # training settings, samples/s
    python benchmarks/accuracy_sweep.py --probe-lr 3e-4,1e-3,3e-3,1e-2 --seeds 0  # tpf fine-tune learning rate on validation
    KERAS_BACKEND=jax python benchmarks/accuracy_sweep.py --measure-speed --batches 128  # another backend
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from _common import emit, git_version, machine, write_json
from compare_methods import RESOURCE, find_ratio, find_width, usage
from _tfmot_child import evaluate

import keras

from keras_cprune import Budget, Distiller, SearchConfig, prune, prune_to_budget, zoo
from keras_cprune.datasets import load_fashion_mnist

SPLIT_SEED, VAL_SIZE = 20261128, 5000  # the validation split never changes
EPOCHS, BATCH, JIT = 3, 128, False  # docs/BENCHMARKS.md: batch and jit from --measure-speed, epochs from the budget
LR = 1e-3  # Adam, cosine decay to 0 over the run
# train -> prune -> fine-tune: the second phase, cosine to 0 over ceil(epochs / 3), per architecture the
# learning rate of the best validation accuracy of --probe-lr (seed 0, docs/results/probes)
FINETUNE_LR = {"vgg": 3e-3, "resnet": 3e-3, "mobilenetv2": 1e-2}
ALPHA, TEMPERATURE = 0.1, 4.0  # distillation from the dense model of the same seed
TARGET_GAP = 0.005  # time to accuracy: first epoch at the dense model's final validation accuracy - 0.5 pp
CODE_VERSION = git_version()  # HEAD when this process started: the code its runs train with, however long they take
CLOCKS = {"train_s": "wall", "cpu_s": "CPU"}  # the two clocks of the per-epoch log
WIDTH_OF = {"PA": "width-params", "FA": "width-macs", "MA": "width-arena"}  # the paired uniform baseline
BUDGETS = {"vgg": (50,), "resnet": (50,), "mobilenetv2": (50, 70)}  # % of the dense model's resource removed
MODES = {50: ("PA", "FA", "MA"), 70: ("PA",)}  # the modes (and uniform widths) at each budget
ABN_MODES = ("PA", "FA")  # adaptive-BN allocation (benchmarks/adaptive_bn.py): a data-driven PA and FA
COST_MODES = ("FA", "MA")  # our cost allocation (`prune_to_budget`): Budget limits MACs and arena, not params
RESULTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results"))
MODELS_DIR = os.path.join(os.path.expanduser("~"), ".cache", "keras-cprune", "accuracy_sweep")  # + the --out path


@dataclass(frozen=True)
class Config:
    arch: str
    method: str  # dense | PA | FA | MA | X-cost | width-params | width-macs | width-arena | tpf-X | tpf-kd-X | X-abn | X-B | joint
    budget: int  # percent of the dense model's resource removed; 0 for dense
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.method}-{self.budget}-seed{self.seed}"

    @property
    def mode(self) -> str | None:
        """PA / FA / MA for the pruned methods, None for dense and uniform width."""
        return mode_of(self.method)

    @property
    def resource(self) -> str | None:
        """params / macs / arena: what the budget limits."""
        if self.mode:
            return RESOURCE[self.mode]
        return self.method.split("-", 1)[1] if self.method.startswith("width") else None


def mode_of(method: str) -> str | None:
    return next((part for part in method.split("-") if part in RESOURCE), None)


def configs(archs, seeds) -> list[Config]:
    """Every configuration, seed by seed (a full table after each seed), dense first (tpf prunes it)."""
    out = []
    for seed in seeds:
        for arch in archs:
            out.append(Config(arch, "dense", 0, seed))
            for budget in BUDGETS[arch]:
                out += [Config(arch, m, budget, seed) for m in MODES[budget]]
                out += [Config(arch, f"{m}-cost", budget, seed) for m in MODES[budget] if m in COST_MODES]
                out += [Config(arch, WIDTH_OF[m], budget, seed) for m in MODES[budget]]
                if budget == 50:
                    out += [Config(arch, f"{m}-abn", budget, seed) for m in ABN_MODES]
                    out += [Config(arch, f"tpf{kd}-FA", budget, seed) for kd in ("", "-kd")]
    return out


def selected(all_configs, only: str | None) -> list[Config]:
    """``only``: comma-separated substrings of configuration names; any one matches."""
    if not only:
        return all_configs
    return [c for c in all_configs if any(part in c.name for part in only.split(","))]


# ---------------------------------------------------------------- data and training
def load_data(train_limit=None, test_limit=None):
    """(x_train, y_train), (x_val, y_val), (x_test, y_test): the fixed 55,000 / 5,000 split of the
    training set, then the first ``train_limit`` training images and ``test_limit`` test images."""
    (x, y), (xt, yt) = load_fashion_mnist(test_size=test_limit)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    val, train = order[:VAL_SIZE], order[VAL_SIZE:][:train_limit]
    return (x[train], y[train]), (x[val], y[val]), (xt, yt)


class EpochLog(keras.callbacks.Callback):
    """Per epoch: training wall and CPU seconds so far (validation excluded), loss, validation accuracy."""

    def __init__(self, val, label: str):
        super().__init__()
        self.val, self.label, self.log, self.seconds, self.cpu = val, label, [], 0.0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.start
        self.cpu += time.process_time() - self.cpu_start
        x, y = self.val
        acc = float(np.mean(np.argmax(self.model.predict(x, batch_size=1000, verbose=0), -1) == y))
        self.log.append({"epoch": epoch + 1, "train_s": round(self.seconds, 2), "cpu_s": round(self.cpu, 2),
                         "loss": float(logs["loss"]), "val_acc": acc})
        print(f"  {self.label} epoch {epoch + 1}: {self.seconds:.0f} s, loss {logs['loss']:.4f}, "
              f"val {acc:.4f}", flush=True)


def train(model, data, epochs: int, seed: int, label: str, *, lr=LR, batch=BATCH, jit=JIT) -> list[dict]:
    """Adam with cosine decay from ``lr`` to 0 over ``epochs``; returns `EpochLog`'s log."""
    (x, y), val, _ = data
    keras.utils.set_random_seed(seed)
    steps = epochs * -(-len(x) // batch)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    log = EpochLog(val, label)
    model.fit(x, y, batch_size=batch, epochs=epochs, callbacks=[log], verbose=0)
    return log.log


# ---------------------------------------------------------------- the configurations
class Budgets:
    """Per architecture and budget: resource limits, ratios of the paper's rule, uniform widths
    (minutes of bisection per architecture, so kept in ``folder``/budgets-<arch>-<budget>.json)."""

    def __init__(self, folder: str):
        self.folder, self.cache = folder, {}

    def of(self, arch: str, budget: int) -> dict:
        path = os.path.join(self.folder, f"budgets-{arch}-{budget}.json")
        if (arch, budget) not in self.cache and os.path.exists(path):
            with open(path) as f:
                self.cache[arch, budget] = json.load(f)
        if (arch, budget) not in self.cache:
            build = zoo.ARCHITECTURES[arch]
            keep = 1 - budget / 100
            limits = {r: int(keep * v) for r, v in usage(build()).items()}
            ratios = {m: find_ratio(build(), m, limits[RESOURCE[m]]) for m in MODES[budget]}
            widths = {RESOURCE[m]: find_width(arch, RESOURCE[m], limits[RESOURCE[m]]) for m in MODES[budget]}
            for r, w in widths.items():  # within 0.01 of a narrower one: the same model (compare_methods)
                widths[r] = min(v for v in widths.values() if 0 <= w - v <= 0.01)
            self.cache[arch, budget] = {"limits": limits, "ratios": ratios, "widths": widths}
            os.makedirs(self.folder, exist_ok=True)
            write_json(path, self.cache[arch, budget])
        return self.cache[arch, budget]


_COST_MODELS: dict = {}  # configuration name -> its untrained cost-allocation model, searched once


def cost_model(config: Config, budgets: Budgets):
    """``config``'s untrained model of our allocation at the sweep's limit: `prune_to_budget` with
    ``allocation="cost"``, predicted (``verify=False``, as the paper-rule limits are), fresh weights."""
    if config.name not in _COST_MODELS:
        keras.utils.set_random_seed(config.seed)
        limit = budgets.of(config.arch, config.budget)["limits"][config.resource]
        budget = Budget(macs=limit) if config.resource == "macs" else Budget(ram=limit)
        _COST_MODELS.clear()  # one at a time: the next configuration never needs an earlier one
        _COST_MODELS[config.name] = prune_to_budget(zoo.ARCHITECTURES[config.arch](), budget, mode=config.mode,
                                                    search=SearchConfig(allocation="cost", verify=False), verbose=0,
                                                    reinitialize=True, seed=config.seed)
    return _COST_MODELS[config.name]


JOINT_PARAMS = 0.30  # the paper's MobileNetV2 point: −70% params, with −50% FLOPs and memory (the −50% limits)


def joint_model(config: Config, budgets: "Budgets") -> tuple:
    """``(untrained model, Budget)``: the dense model pruned at once to 50% of its MACs, 50% of its predicted arena
    and the largest flash (int8 model bytes) at which it keeps at most 30% of its parameters: `Budget` limits flash,
    not parameters (bisected to 1/2**10 of the dense flash). MA mode, cost allocation, predicted (``verify=False``),
    fresh weights; the search's importance is the seed's initial weights', as in `cost_model`."""
    from compare_methods import bisect
    from keras_cprune import analyze, apply_plan, plan_to_budget
    from keras_cprune.budget.usage import usage_estimator
    from keras_cprune.pruning.context import PruneContext

    keras.utils.set_random_seed(config.seed)
    dense = zoo.ARCHITECTURES[config.arch]()
    limits, params = budgets.of(config.arch, 50)["limits"], analyze(dense).params
    at = lambda flash: Budget(flash=int(flash), macs=limits["macs"], ram=limits["arena"])  # noqa: E731
    plans = {}  # flash limit -> its plan: the bisection's last fitting limit is the model's

    def kept(flash):
        plans[flash] = plan_to_budget(dense, at(flash), mode="MA", search=SearchConfig(allocation="cost", verify=False),
                                      verbose=0, seed=config.seed)
        return plans[flash].after.params <= JOINT_PARAMS * params

    flash = usage_estimator(PruneContext.of(dense))(set()).flash
    limit = bisect(kept, flash, JOINT_PARAMS * flash, steps=10)  # 30% of the flash keeps ~15% of the params
    if limit not in plans:  # the bisection never left its starting bound
        kept(limit)
    return apply_plan(dense, plans[limit], reinitialize=True), at(limit)  # prune_to_budget, without a second search


def threads() -> int:
    """TensorFlow's intra-op threads (0: one per core), as ``--threads`` set them."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def channels(model) -> dict:
    """Output channels of every layer that has a kernel: the architecture, for comparing allocations."""
    return {layer.name: int(layer.kernel.shape[-1]) for layer in model.layers if hasattr(layer, "kernel")}


def build(config: Config, budgets: Budgets, models_dir: str, data=None) -> tuple:
    """The untrained (or, for tpf, pruned dense) model and the configuration details to record; ``data``
    (`load_data`'s) for the allocations that read it."""
    builder = zoo.ARCHITECTURES[config.arch]
    keras.utils.set_random_seed(config.seed)
    if config.method == "dense":
        return builder(), {}
    if equal_compute(config):  # the same architecture and initialization, more epochs
        return build(Config(config.arch, config.method[:-2], config.budget, config.seed), budgets, models_dir, data)
    if config.method == "joint":
        model, budget = joint_model(config, budgets)
        return model, {"limits": {k: v for k, v in vars(budget).items() if v is not None}, "allocation": "cost",
                       "channels": channels(model)}
    b = budgets.of(config.arch, config.budget)
    details = {"limit": b["limits"][config.resource], "resource": config.resource}
    if config.method.startswith("width"):
        width = b["widths"][config.resource]
        return builder(width=width), {**details, "width": width}
    mode = config.mode
    if config.method.endswith("-abn"):
        import adaptive_bn

        model, found = adaptive_bn.allocate(config.arch, mode, details["limit"], config.seed, data, train)
        return model, {**details, **found, "channels": channels(model)}
    if config.method.endswith("-cost"):
        model = cost_model(config, budgets)
        return model, {**details, "allocation": "cost", "channels": channels(model)}
    ratio, rule = b["ratios"][mode]
    details.update(ratio=ratio, rule=rule)
    if config.method in RESOURCE:  # the paper: the pruned architecture trained from scratch
        return prune(builder(), mode, ratio, rule=rule, reinitialize=True, seed=config.seed), details
    dense = keras.models.load_model(dense_path(models_dir, config))
    return prune(dense, mode, ratio, rule=rule), {**details, "importance": "l1", "teacher": dense}


def learning_rate(config: Config, lr: float = LR) -> float:
    """The initial learning rate of ``config``'s training (tpf: of its fine-tuning); ``lr``: the sweep's
    from-scratch rate."""
    return FINETUNE_LR[config.arch] if config.method.startswith("tpf") else lr


def equal_compute(config: Config) -> bool:
    """Scratch-B (Liu et al., ICLR 2019): trained for the dense model's training MACs, not its epochs."""
    return config.method.endswith("-B")


def epochs_of(config: Config, epochs: int, model=None) -> int:
    """``config``'s epochs in a sweep of ``epochs`` (tpf: of its fine-tuning, a third of them rounded up;
    Scratch-B: ``epochs`` x dense MACs / ``model``'s MACs, rounded)."""
    if equal_compute(config):
        from keras_cprune import analyze

        return max(epochs, round(epochs * analyze(zoo.ARCHITECTURES[config.arch]()).macs / analyze(model).macs))
    return -(-epochs // 3) if config.method.startswith("tpf") else epochs


def protocol(config: Config, epochs: int, lr: float = LR) -> dict:
    """The training settings a result or a cached model of ``config`` must have been made with."""
    epochs = {"schedule_epochs": epochs} if equal_compute(config) else {"epochs": epochs_of(config, epochs)}
    return {**epochs, "lr": learning_rate(config, lr)}


def dense_path(models_dir: str, config: Config) -> str:
    path = os.path.join(models_dir, f"{config.arch}-dense-0-seed{config.seed}.keras")
    if config.method != "dense" and not os.path.exists(path):
        raise FileNotFoundError(f"{config.name} prunes the trained dense model {path}, which is missing. Run "
                                f"--only {config.arch}-dense-0-seed{config.seed} first (delete its JSON if it "
                                "exists: the weights were not kept).")
    return path


def run(config: Config, data, args, budgets: Budgets) -> dict:
    """Train ``config`` as the protocol says (or load it, trained before an interrupted evaluation)
    and evaluate it: its JSON record."""
    model, record = trained(config, data, args, budgets)
    _, _, test = data
    int8 = config.seed in args.int8_seeds  # the whole test set on TFLM: minutes per ResNet
    measured = evaluate(model, (data[0], test), 0.0) if int8 else float_only(model, test)
    figures = {"test_acc": measured.pop("float_acc"), "int8_test_acc": measured.pop("int8_acc", None), **measured}
    return {**figures, **record, "finished": datetime.datetime.now().isoformat(timespec="seconds")}  # record's train_s


def trained(config: Config, data, args, budgets: Budgets) -> tuple:
    """``(trained model, record without the test figures)``. Both are kept in ``args.models``
    (``<name>.keras``, ``<name>.train.json``) before evaluating, so an evaluation that fails does
    not cost the training: the next sweep loads them. A learning-rate probe's run of the same configuration
    at the same rate (``args.models/lr<rate>/``, `probe_lr`) is the same training: it is loaded too."""
    lr = getattr(args, "lr", LR)
    for folder in (args.models, os.path.join(args.models, f"lr{lr:g}")):
        cached = load_trained(folder, config, protocol(config, args.epochs, lr))
        if cached:
            return cached
    model, details = build(config, budgets, args.models, data)
    teacher = details.pop("teacher", None)
    epochs, dense_s, dense_cpu = epochs_of(config, args.epochs, model), 0.0, 0.0
    if equal_compute(config):
        details["schedule_epochs"] = args.epochs
    if teacher is None:
        log = train(model, data, epochs, config.seed, config.name, lr=lr)
    else:  # train -> L1 prune -> fine-tune: the dense run's time counts
        with open(os.path.join(args.out, f"{config.arch}-dense-0-seed{config.seed}.json")) as f:
            dense = json.load(f)
        dense_s, dense_cpu = dense["train_s"], dense["cpu_s"]
        student = model
        if "-kd-" in config.method:
            details.update(alpha=ALPHA, temperature=TEMPERATURE)
            student = Distiller(model, teacher, alpha=ALPHA, temperature=TEMPERATURE)
        log = train(student, data, epochs, config.seed, config.name, lr=learning_rate(config))
        for entry in log:
            entry["train_s"] = round(entry["train_s"] + dense_s, 2)
            entry["cpu_s"] = round(entry["cpu_s"] + dense_cpu, 2)
    record = training_record(config, data, {**details, "epochs": epochs, "lr": learning_rate(config, lr)}, log, dense_s)
    keep_trained(args.models, model, record)  # for a dense configuration also dense_path(): the teacher of its tpf runs
    return model, record


def training_record(config: Config, data, settings: dict, log: list, dense_s: float = 0.0) -> dict:
    """A trained model's record: configuration and ``settings`` (epochs, lr, details), code, machine, the log."""
    clash = set(settings) & set(asdict(config))
    if clash:  # the report reads arch, method, budget and seed from the record's configuration
        raise ValueError(f"{config.name}: settings {sorted(clash)} would overwrite the configuration's fields.")
    (x, _), (x_val, _), (x_test, _) = data
    return {"name": config.name, "config": {**asdict(config), "batch": BATCH, "jit_compile": JIT, "optimizer": "Adam",
                                            "threads": threads(), "schedule": "cosine decay to 0", "train_size": len(x),
                                            "val_size": len(x_val), "test_size": len(x_test),
                                            "split_seed": SPLIT_SEED, **settings},
            "code_version": CODE_VERSION, "machine": machine(), "log": log, "val_acc": log[-1]["val_acc"],
            "dense_train_s": dense_s, "train_s": log[-1]["train_s"], "cpu_s": log[-1]["cpu_s"]}


def keep_trained(folder: str, model, record: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, record["name"] + ".keras"))
    write_json(os.path.join(folder, record["name"] + ".train.json"), record)


def load_trained(folder: str, config: Config, settings: dict) -> tuple | None:
    """``(model, record)`` kept in ``folder`` for ``config`` if it was trained with ``settings``, else None."""
    path, meta = (os.path.join(folder, config.name + ext) for ext in (".keras", ".train.json"))
    if not (os.path.exists(path) and os.path.exists(meta)):
        return None
    with open(meta) as f:
        record = json.load(f)
    if any(record["config"].get(k) != v for k, v in settings.items()):  # trained otherwise: train again
        return None
    return keras.models.load_model(path), record


def float_only(model, test) -> dict:
    from keras_cprune import analyze, estimate_arena

    x, y = test
    report = analyze(model)
    return {"float_acc": float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), -1) == y)),
            "params": report.params, "macs": report.macs, "predicted_arena": estimate_arena(model).bytes}


def shared_width(config: Config, budgets: Budgets, out: str) -> dict | None:
    """A uniform-width run whose width another width configuration (same seed) already trained."""
    if not config.method.startswith("width"):
        return None
    widths = budgets.of(config.arch, config.budget)["widths"]
    for resource, width in widths.items():
        other = Config(config.arch, f"width-{resource}", config.budget, config.seed)
        path = os.path.join(out, other.name + ".json")
        if other != config and width == widths[config.resource] and os.path.exists(path):
            with open(path) as f:
                record = json.load(f)
            limit = budgets.of(config.arch, config.budget)["limits"][config.resource]
            record["config"].update(method=config.method, resource=config.resource, limit=limit)
            return {**record, "name": config.name, "shared_with": other.name}
    return None


def shared_cost(config: Config, budgets: Budgets, out: str) -> dict | None:
    """A cost-allocation run whose architecture is the paper rule's (same seed, already trained):
    the same widths, initialization and data train the same model. The cost search's widths
    depend on the importance of this seed's initial weights, so they are compared seed by seed."""
    if not config.method.endswith("-cost"):
        return None
    other = Config(config.arch, config.mode, config.budget, config.seed)
    path = os.path.join(out, other.name + ".json")
    if not os.path.exists(path):
        return None
    ratio, rule = budgets.of(config.arch, config.budget)["ratios"][config.mode]
    keras.utils.set_random_seed(config.seed)  # as build() does before building
    paper = prune(zoo.ARCHITECTURES[config.arch](), config.mode, ratio, rule=rule)
    if channels(cost_model(config, budgets)) != channels(paper):
        return None
    with open(path) as f:
        record = json.load(f)
    record["config"].update(method=config.method, allocation="cost")
    return {**record, "name": config.name, "shared_with": other.name}


def sweep(args, all_configs: list | None = None) -> None:
    """Train and evaluate each of ``all_configs`` (default: the protocol's `configs`) that ``args.only``
    selects and that has no result file in ``args.out`` yet."""
    data = load_data(args.train_limit, args.test_limit)
    print(f"machine: {machine()}; code {CODE_VERSION}; train {len(data[0][0])}, val {len(data[1][0])}, "
          f"test {len(data[2][0])}; {args.epochs} epochs, lr {args.lr:g}, batch {BATCH}, jit_compile={JIT}, "
          f"{threads() or 'all'} threads", flush=True)
    budgets, start = Budgets(args.budgets), time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    for config in selected(all_configs or configs(args.archs.split(","), args.seeds), args.only):
        path = os.path.join(args.out, config.name + ".json")
        if os.path.exists(path):
            with open(path) as f:
                done = json.load(f)["config"]
            expected = {**protocol(config, args.epochs, args.lr), "train_size": len(data[0][0]), "test_size": len(data[2][0])}
            if any(done.get(k) != v for k, v in expected.items()):
                print(f"{config.name}: skipped, but its file was made with "
                      f"{ {k: done[k] for k in expected} }, not {expected}: delete it to rerun", flush=True)
            continue
        record = (shared_width(config, budgets, args.out) or shared_cost(config, budgets, args.out)
                  or run(config, data, args, budgets))
        write_json(path, record)
        print(f"{config.name}: test {record['test_acc']:.4f}, int8 {record['int8_test_acc']}, "
              f"train {record['train_s']:.0f} s; {time.perf_counter() - start:.0f} s so far", flush=True)


def probe_lr(args, lrs, method: str = "tpf-FA") -> None:
    """Learning rates tried on validation: per architecture and seed, ``method``'s model (for tpf the
    trained dense model pruned to the FA budget) trained at each of ``lrs`` as the sweep trains it
    (tpf: fine-tunes); one JSON per run in OUT/probes/ (the test set is not read). A from-scratch run's model is
    kept in MODELS/lr<rate>/, where the sweep at that rate finds it (`trained`)."""
    data = load_data(args.train_limit, args.test_limit)
    budgets, folder = Budgets(args.budgets), os.path.join(args.out, "probes")
    os.makedirs(folder, exist_ok=True)
    for config in (Config(arch, method, 0 if method == "dense" else 50, seed)
                   for seed in args.seeds for arch in args.archs.split(",")):
        for lr in lrs:
            path = os.path.join(folder, f"{config.name}-lr{lr:g}.json")
            if os.path.exists(path):
                continue
            model, details = build(config, budgets, args.models)
            details.pop("teacher", None)
            epochs = epochs_of(config, args.epochs, model)
            log = train(model, data, epochs, config.seed, f"{config.name} lr {lr:g}", lr=lr)
            record = training_record(config, data, {**details, "epochs": epochs, "lr": lr}, log)
            if not config.method.startswith("tpf"):
                keep_trained(os.path.join(args.models, f"lr{lr:g}"), model, record)
            write_json(path, record)
            print(f"{config.name} lr {lr:g}: val {log[-1]['val_acc']:.4f}", flush=True)


# ---------------------------------------------------------------- training speed
def measure_speed(archs, batches=(64, 128, 256), samples: int = 3840) -> None:
    """Training samples/s (wall and per CPU-second) of each architecture per jit_compile and batch
    size: one warm-up epoch (tracing, compilation) then one timed epoch of ``samples`` images. The
    Keras backend is KERAS_BACKEND's; other backends than TensorFlow are timed compiled only (their
    uncompiled path is eager)."""
    (x, y), _, _ = load_data(samples)
    backend = keras.backend.backend()
    print(f"machine: {machine()}; backend {backend}; {samples} images per timed epoch", flush=True)
    for arch in archs:
        for jit in (False, True) if backend == "tensorflow" else (True,):
            for batch in batches:
                keras.utils.set_random_seed(0)
                model = zoo.ARCHITECTURES[arch]()
                model.compile(optimizer=keras.optimizers.Adam(LR), jit_compile=jit,
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                warm = time.perf_counter()
                model.fit(x[:3 * batch], y[:3 * batch], batch_size=batch, epochs=1, verbose=0)
                warm = time.perf_counter() - warm
                wall, cpu = time.perf_counter(), time.process_time()
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(f"{arch:<12} {backend} jit_compile={jit!s:<5} batch {batch:>3}: {samples / wall:7.0f} samples/s wall, "
                      f"{samples / cpu:7.0f} per CPU-s, first 3 steps {warm:5.1f} s", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs of every model (default {EPOCHS}); "
                        "train -> prune -> fine-tune fine-tunes ceil(epochs / 3) after the dense run")
    parser.add_argument("--lr", type=float, default=LR, help=f"learning rate of the from-scratch runs (default {LR:g})")
    parser.add_argument("--threads", type=int, help="TensorFlow threads per process (default: one per core); "
                        "1 with one process per core is the fastest per CPU-second here")
    parser.add_argument("--seeds", default="0,1,2", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--archs", default=",".join(zoo.ARCHITECTURES))
    parser.add_argument("--only", help="comma-separated substrings of configuration names, e.g. vgg,resnet-PA")
    parser.add_argument("--study", choices=("protocol", "convergence"), default="protocol",
                        help="protocol: the 3-epoch configurations of the accuracy protocol (default); convergence: "
                        "benchmarks/convergence.py's, one architecture per process, at its validated learning rate")
    parser.add_argument("--out", help="folder of the JSON files (default docs/results; convergence: "
                        "docs/results/e<epochs>)")
    parser.add_argument("--models", help="trained dense models (for train -> prune -> fine-tune) and the budgets "
                                         f"(default: a folder in {MODELS_DIR} named after --out)")
    parser.add_argument("--train-limit", type=int, help="first N training images only (smoke runs)")
    parser.add_argument("--test-limit", type=int, help="first N test images only (smoke runs)")
    parser.add_argument("--int8-seeds", default="0", type=lambda s: [int(v) for v in s.split(",") if v],
                        help="seeds whose models are converted to int8 and run on TFLM over the test set "
                             "(default 0; '' for none)")
    parser.add_argument("--list", action="store_true", help="list the configurations and which are done")
    parser.add_argument("--report", nargs="?", const="-", metavar="FILE", help="markdown table (stdout or FILE)")
    parser.add_argument("--plot", metavar="PNG", help="plot every method's accuracy over seeds to PNG")
    parser.add_argument("--measure-speed", action="store_true", help="time jit_compile x batch size per arch "
                        "(the backend is KERAS_BACKEND's)")
    parser.add_argument("--probe-lr", metavar="LRS", type=lambda s: [float(v) for v in s.split(",")],
                        help="learning rates to try on the validation split (--archs, --seeds, --probe-method; "
                             "JSON files in OUT/probes)")
    parser.add_argument("--probe-method", default="tpf-FA", choices=("tpf-FA", "FA", "dense"),
                        help="the configuration --probe-lr trains (default tpf-FA: the fine-tuning)")
    parser.add_argument("--batches", default="64,128,256", type=lambda s: [int(v) for v in s.split(",")],
                        help="batch sizes of --measure-speed")
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    unknown = set(args.archs.split(",")) - set(zoo.ARCHITECTURES)
    if unknown:
        parser.error(f"--archs takes names of {sorted(zoo.ARCHITECTURES)}. Received: {sorted(unknown)}.")
    all_configs, args.budgets = None, None
    if args.study == "convergence":
        import convergence

        if "," in args.archs:
            parser.error("--study convergence trains one architecture per process (its learning rate): --archs vgg")
        args.out = args.out or convergence.folder(args.epochs)
        args.budgets = os.path.join(MODELS_DIR, "convergence-budgets")  # one search for every schedule
        all_configs = convergence.configs(args.archs, args.seeds, args.epochs)
        if not args.probe_lr and not args.list:
            args.lr = convergence.learning_rate(args.archs)
    args.out = args.out or RESULTS
    args.models = args.models or os.path.join(MODELS_DIR, os.path.abspath(args.out).strip(os.sep).replace(os.sep, "_"))
    args.budgets = args.budgets or args.models
    if args.measure_speed:
        return measure_speed(args.archs.split(","), args.batches)
    if args.probe_lr:
        return probe_lr(args, args.probe_lr, args.probe_method)
    if args.report or args.plot:
        import accuracy_report

        if args.plot:
            print(accuracy_report.plot(args.out, args.plot))
        return emit(accuracy_report.report(args.out), args.report) if args.report else None
    if args.list:
        for c in selected(all_configs or configs(args.archs.split(","), args.seeds), args.only):
            print(f"{'done' if os.path.exists(os.path.join(args.out, c.name + '.json')) else 'todo'}  {c.name}")
        return None
    sweep(args, all_configs)


if __name__ == "__main__":
    sys.exit(main())
