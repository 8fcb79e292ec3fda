"""A tiny synthetic dataset in the CoLA on-disk format, shared by the sentence-classification tests.

Vocabulary: UNK = 0, words w1..w12, CLS, PAD (the real data's layout, with CLS and PAD last). Each row
is 1..6 random words, then CLS, then PAD up to T = 10. The label is 1 exactly when the word 'w1'
occurs, so a model that reads the words can learn it and one that does not cannot.
"""
import numpy as np

WORDS = ["UNK"] + ["w%d" % i for i in range(1, 13)] + ["CLS", "PAD"]
T = 10


def word_to_ix():
    return {w: i for i, w in enumerate(WORDS)}


def make_split(n, seed):
    """(n, T) rows and (n,) labels of the synthetic task."""
    rng = np.random.default_rng(seed)
    cls, pad = WORDS.index("CLS"), WORDS.index("PAD")
    inputs = np.full((n, T), pad, dtype=np.int64)
    for i in range(n):
        length = int(rng.integers(1, 7))
        inputs[i, :length] = rng.integers(0, cls, size=length)
        inputs[i, length] = cls
    labels = (inputs == WORDS.index("w1")).any(axis=1).astype(np.int64)
    return inputs, labels


def write_cola_dir(path, num_train=60, num_val=30, seed=0):
    """Write the synthetic dataset to ``path`` in the CoLA format; return the path."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "word_to_ix.csv", "w") as f:
        for w, i in sorted(word_to_ix().items(), key=lambda kv: (kv[1] == 0, kv[1])):
            f.write(f"{w},{i}\n")
    for split, n, s in (("train", num_train, seed), ("val", num_val, seed + 1)):
        inputs, labels = make_split(n, s)
        np.save(path / f"{split}_inxs.npy", inputs)
        np.save(path / f"{split}_labels.npy", labels)
    return path
