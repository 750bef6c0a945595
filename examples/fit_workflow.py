"""Two ways to get a pruned model out of Keras ``fit`` on Fashion-MNIST (a subset: about a minute).

(a) the paper's pipeline: prune the architecture (``reinitialize=True``), then train it from scratch;
(b) gradual pruning: train while `FilterPruningStep` zeroes filters on a schedule, then `strip` them.

    python examples/fit_workflow.py
"""
import keras

from keras_cprune import analyze, prune
from keras_cprune.training.callbacks import ComplexityLogger
from keras_cprune.datasets import load_fashion_mnist
from keras_cprune import PolynomialDecay, prune_during_training, strip
from keras_cprune.zoo import vgg

MODE, RATIO, EPOCHS, BATCH = "MA", 0.5, 3, 64


def compiled(model):
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def paper_pipeline(data):
    """(a) Complexity-driven pruning of the architecture, trained from scratch."""
    (x, y), (x_test, y_test) = data
    pruned = compiled(prune(vgg(), MODE, RATIO, reinitialize=True))
    history = pruned.fit(x, y, epochs=EPOCHS, batch_size=BATCH, callbacks=[ComplexityLogger()], verbose=2)
    print(f"logged: params {history.history['params'][-1]:,}, MACs {history.history['macs'][-1]:,}")
    return pruned, pruned.evaluate(x_test, y_test, verbose=0)[1]


def gradual_pipeline(data):
    """(b) Train the dense model while its filters are pruned on a schedule (over the first half
    of training; the second half fine-tunes), then strip the zeroed filters."""
    (x, y), (x_test, y_test) = data
    steps = EPOCHS * -(-len(x) // BATCH)
    schedule = PolynomialDecay(0.0, RATIO, begin_step=0, end_step=steps // 2, frequency=steps // 10)
    masked, pruning = prune_during_training(vgg(), MODE, schedule=schedule)
    compiled(masked).fit(x, y, epochs=EPOCHS, batch_size=BATCH, callbacks=[pruning], verbose=2)
    pruning.plan.summary()
    small = compiled(strip(masked))
    return small, small.evaluate(x_test, y_test, verbose=0)[1]


def main():
    keras.utils.set_random_seed(0)
    data = load_fashion_mnist(train_size=12000, test_size=2000)
    base = analyze(vgg())
    for name, pipeline in (("(a) prune, then train", paper_pipeline), ("(b) train while pruning", gradual_pipeline)):
        model, accuracy = pipeline(data)
        r = analyze(model)
        print(f"{name}: test accuracy {accuracy:.3f}; params {base.params:,} -> {r.params:,}, "
              f"MACs {base.macs:,} -> {r.macs:,}, peak int8 activations {base.peak_act_bytes_int8:,} -> "
              f"{r.peak_act_bytes_int8:,} B\n")


if __name__ == "__main__":
    main()
