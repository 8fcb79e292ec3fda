"""Kernel launches and host synchronisations per training step, counted without a GPU.

    python benchmarks/gpu_counts.py            # the table (a few seconds on the CPU)

Each model trains on the fake CuPy of the test suite (``tests/fake_cupy.py``, numpy arithmetic standing
for device arrays), through the project's own solver: one ``solver._step()`` is a minibatch copied to
the device, ``model.loss`` (forward and every gradient), the finiteness checks and the optimizer update
of every parameter (Adam), and the one read-back of the loss and the flags that the solver needs. The
fake counts (see ``fake_cupy.Counts``):

- launches: the operations the GPU would run (one per array operation on device arrays; one per call
  of a fused kernel object, ElementwiseKernel or ReductionKernel, which the fake runs as a numpy
  reference when ``--fused`` is given, see ``fake_cupy.FakeCupy``);
- syncs: the reads of device values by the host (each one waits for the GPU to finish);
- transfers: host -> device copies (the minibatch);
- generators: cuRAND generators created (for dropout masks).

Counts depend on the number of timesteps and layers, not on N, H or V, so the models are small here but
have the structure of the GPU benchmarks: captions of T=16 words (bench_gpu.py), the Transformer's
2 layers, 4 heads and dropout 0.1 (bench_transformer.py), CoLA's ClassificationTransformer with its
defaults (rows of up to 12 tokens here). The first step (which creates the optimizer state) is not
counted; the second is. A second table gives the same counts per generated word of greedy decoding
(``model.sample``) for the LSTM and the Transformer.

On a GPU each launch costs the host several microseconds of Python and CUDA-driver time whatever its
size, and each sync stalls the host until the device is done: at small batches these counts, not the
arithmetic, set the time per step (issue 23).
"""
import argparse
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, "tests"))

import numpy as np  # noqa: E402

MODELS = ("lstm", "gru", "rnn", "attention", "transformer", "cola")
T_CAPTION = 16  # words per caption after <START> (bench_gpu.py's T)


def _vocab(V=12):
    words = ["<NULL>", "<START>", "<END>", "<UNK>"] + ["w%d" % i for i in range(V - 4)]
    return {w: i for i, w in enumerate(words)}


def captioning_data(num_train=40, D=6, seed=0, regions=None):
    """COCO-layout data with captions of exactly T_CAPTION + 1 tokens, none of them padding; with
    ``regions=R`` the features are R region vectors per image (for the attention LSTM)."""
    rng = np.random.default_rng(seed)
    V = len(_vocab())
    caps = rng.integers(4, V, size=(num_train, T_CAPTION + 1)).astype(np.int32)
    caps[:, 0], caps[:, -1] = 1, 2
    return {"train_captions": caps, "train_image_idxs": rng.integers(0, 5, num_train).astype(np.int32),
            "train_features": rng.standard_normal((5, D) if regions is None else (5, regions, D)
                                                  ).astype(np.float32),
            "train_urls": np.array(["u%d" % i for i in range(5)]),
            "idx_to_word": list(_vocab()), "word_to_idx": _vocab()}


def make_solver(kind, batch_size=8, **solver_options):
    """A solver of model ``kind`` on the GPU (whatever ``cupy`` is installed: the fake, or real CuPy)."""
    from cs231n.captioning_solver import CaptioningSolver
    from cs231n.classification_solver import ClassificationSolver
    from cs231n.classifiers.classification_transformer import ClassificationTransformer
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.classifiers.transformer import CaptioningTransformer
    options = dict(update_rule="adam", optim_config={"learning_rate": 1e-3}, batch_size=batch_size,
                   num_epochs=1, verbose=False, seed=0)
    options.update(solver_options)
    np.random.seed(0)  # the same weights every time (the captioning models draw them from np.random)
    if kind == "cola":
        import cola_fixtures
        inputs, labels = cola_fixtures.make_split(64, seed=0)
        data = {"train_inxs": inputs, "train_labels": labels, "word_to_ix": cola_fixtures.word_to_ix()}
        model = ClassificationTransformer(data["word_to_ix"], hidden_dim=8, num_heads=2, dim_feedforward=16,
                                          dim_k=4, dim_v=4, dim_q=4, max_length=cola_fixtures.T, seed=0)
        return ClassificationSolver(model.to("gpu"), data, num_train_eval=0, **options)
    data = captioning_data(regions=4 if kind == "attention" else None)
    if kind == "transformer":
        model = CaptioningTransformer(data["word_to_idx"], 6, 8, num_heads=4, num_layers=2,
                                      max_length=T_CAPTION + 1, dim_feedforward=16, dropout=0.1)
    else:
        model = CaptioningRNN(data["word_to_idx"], input_dim=6, wordvec_dim=4, hidden_dim=5, cell_type=kind)
    return CaptioningSolver(model.to("gpu"), data, **options)


def count_step(kind, **solver_options):
    """{'launches', 'syncs', 'transfers'} of the second training step of ``kind`` on the fake CuPy.

    The fake must already be installed as ``sys.modules['cupy']`` (see ``install_fake``).
    """
    import fake_cupy
    solver = make_solver(kind, **solver_options)
    solver._start_rng()
    solver._step()  # creates the optimizer state
    before = fake_cupy.COUNTS.snapshot()
    solver._step()
    after = fake_cupy.COUNTS.snapshot()
    return {k: after[k] - before[k] for k in after}


DECODERS = ("lstm", "transformer")


def make_decoder(kind, N=8):
    """A small model of ``kind`` ('lstm' or 'transformer', the training table's shapes) on the GPU,
    without dropout, and device features (N, D) to caption."""
    from cs231n.backend import to_device
    from cs231n.classifiers.rnn import CaptioningRNN
    from cs231n.classifiers.transformer import CaptioningTransformer
    vocab = _vocab()
    np.random.seed(0)
    if kind == "transformer":
        model = CaptioningTransformer(vocab, 6, 8, num_heads=4, num_layers=2, max_length=2 * T_CAPTION,
                                      dim_feedforward=16, dropout=0.1)
        model.training = False
    else:
        model = CaptioningRNN(vocab, input_dim=6, wordvec_dim=4, hidden_dim=5, cell_type=kind)
    features = np.random.default_rng(1).standard_normal((N, 6)).astype(np.float32)
    return model.to("gpu"), to_device(features, "gpu")


def count_decoding(kind, words=T_CAPTION, **sample_options):
    """{'launches', 'syncs', 'transfers', 'generators'} of ``model.sample`` (greedy by default) of
    ``words`` words for 8 images on the fake CuPy, divided by ``words``. <END>'s score is pushed down
    (its bias at -1e4), so that no caption ends early and every run decodes all ``words`` words, asking
    "has every caption ended?" every few words as usual."""
    import fake_cupy
    model, features = make_decoder(kind)
    model.params["b_vocab"][model._end] = -1e4
    model.sample(features, max_length=words, **sample_options)  # first call: the kernels' set-up
    before = fake_cupy.COUNTS.snapshot()
    model.sample(features, max_length=words, **sample_options)
    after = fake_cupy.COUNTS.snapshot()
    return {k: (after[k] - before[k]) / words for k in after}


def install_fake(**options):
    """Install a fresh fake CuPy as ``sys.modules['cupy']`` and return it."""
    from fake_cupy import FakeCupy
    fake = FakeCupy(**options)
    sys.modules["cupy"] = fake
    return fake


def table(counts, number_format="%9d %6d %10d %11d"):
    lines = ["%-12s %9s %6s %10s %11s" % ("model", "launches", "syncs", "transfers", "generators")]
    for kind, c in counts.items():
        lines.append(("%-12s " + number_format) % (kind, c["launches"], c["syncs"], c["transfers"],
                                                   c["generators"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from %s" % (MODELS,))
    parser.add_argument("--generic", action="store_true",
                        help="without the fused kernels: what numpy-style code launches (the default shows "
                             "what real CuPy runs: the fused kernels' bodies compiled by g++, one launch each)")
    args = parser.parse_args(argv)
    kinds = args.models.split(",")
    bad = [k for k in kinds if k not in MODELS]
    if bad:
        parser.error("--models: unknown %s; choose from %s" % (bad, MODELS))
    if "cupy" in sys.modules:
        parser.error("CuPy is already imported; the counts need the fake")
    import host_kernels
    fused = not args.generic and host_kernels.available()
    install_fake(kernels=fused)
    print("per training step (solver._step: minibatch in, loss + grads, Adam on every parameter), "
          "counted on the fake CuPy, %s\n" % ("with the fused kernels (as on real CuPy)" if fused else
                                               "WITHOUT the fused kernels (generic array code)"))
    print(table({k: count_step(k) for k in kinds}))
    print("\nper generated word of greedy decoding (model.sample of %d words for 8 images, results read "
          "back once at the end)\n" % T_CAPTION)
    print(table({k: count_decoding(k) for k in DECODERS}, "%9.1f %6.3f %10.3f %11.3f"))


if __name__ == "__main__":
    main()
