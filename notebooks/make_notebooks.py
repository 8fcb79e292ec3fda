"""Write (and run) the walk-through notebooks from the readable cell lists in this file.

The ``.ipynb`` files in this directory are generated: edit the cells here, then regenerate.

    python notebooks/make_notebooks.py                 # write all notebooks and run them for real (minutes)
    python notebooks/make_notebooks.py RNN_Captioning  # only one
    python notebooks/make_notebooks.py --small         # run in small mode (quick look; don't commit that)
    python notebooks/make_notebooks.py --no-execute    # write them without outputs

The committed notebooks carry the outputs of a full run (``python notebooks/make_notebooks.py``), so
their plots and printed checks are visible on GitHub. ``tests/test_notebooks.py`` runs them in small
mode (``CS231N_NOTEBOOK_SMALL=1``) and checks that their cells are the ones written here.

Each notebook is a list of cells; a cell is ``("md", text)`` or ``("code", text)``. The two captioning
notebooks share most of their cells; ``<<cell>>`` in a shared cell stands for ``rnn`` or ``lstm`` and
``<<Cell>>`` for its display name.
"""
import argparse
import os
import sys
import textwrap
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT = 1800  # seconds per cell when run from here (a full run's training cell takes minutes)


def _cell(kind, text, **subs):
    """A (kind, source) pair with the source dedented, stripped and its ``<<name>>`` markers filled in."""
    source = textwrap.dedent(text).strip("\n")
    for name, value in subs.items():
        source = source.replace("<<%s>>" % name, value)
    if "<<" in source and ">>" in source.split("<<", 1)[1]:
        raise ValueError("unfilled marker in cell: %r" % source[:80])
    return (kind, source)


def md(text, **subs):
    """A markdown cell (see _cell)."""
    return _cell("md", text, **subs)


def code(text, **subs):
    """A code cell (see _cell)."""
    return _cell("code", text, **subs)


# ----------------------------------------------------------------------------------------------------
# Cells shared by the captioning notebooks
# ----------------------------------------------------------------------------------------------------

def _intro_cells(title, what):
    return [
        md("""
        # <<title>>

        <<what>>

        The order follows the cs231n assignment: load the data and look at it; build each layer and check
        it numerically; check the model's loss and its whole gradient; overfit a small dataset; sample
        captions on train and val; score them; compare greedy decoding with beam search; and finally train
        a good model on the full default dataset.

        **Data.** By default the notebook uses the synthetic *shapes* dataset (`cs231n.data.shapes`): images
        of colored shapes with five captions each, stored in the cs231n COCO captioning format and
        generated into `datasets/shapes` on first use (under a minute). When the environment variable
        `CS231N_COCO_DIR` points at the real COCO captioning release (`python -m cs231n download coco`),
        the same cells run on COCO instead; nothing needs editing either way.

        **Checks.** Every numerical check prints its relative error and then `assert`s it is below a
        threshold, so a wrong gradient stops the notebook (and fails `tests/test_notebooks.py`, which runs
        every notebook headless). `CS231N_NOTEBOOK_SMALL=1` shrinks the slow parts for that test.
        """, title=title, what=what),
    ]


def _setup_cells(layer_imports):
    return [
        code("""
        import os
        import textwrap
        import time

        import matplotlib.pyplot as plt
        import numpy as np

        from cs231n.captioning_solver import CaptioningSolver
        from cs231n.classifiers.rnn import CaptioningRNN
        from cs231n.coco_utils import decode_captions, load_coco_data, sample_coco_minibatch, strip_framing
        from cs231n.data.shapes import ensure_shapes_dataset
        from cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, rel_error
        from cs231n.image_utils import image_from_url
        from cs231n.metrics import evaluate_model, references_from_data, score_captions, score_model
        from cs231n.rnn_layers import (
        <<imports>>
        )
        from cs231n.vis import caption_grid, plot_training_curves

        %matplotlib inline
        plt.rcParams["figure.dpi"] = 80  # modest figures keep the committed notebook small

        # CS231N_NOTEBOOK_SMALL=1 (set by tests/test_notebooks.py) shrinks the slow parts.
        SMALL = os.environ.get("CS231N_NOTEBOOK_SMALL", "0") not in ("", "0")
        FORWARD_TOL = 1e-8   # a forward pass against the formula written out here
        LAYER_TOL = 1e-6     # a layer's analytic gradient against the numerical one (float64)
        SEQUENCE_TOL = 1e-5  # the same over T steps, where the numerical gradient's rounding error grows
        MODEL_TOL = 5e-6     # the whole model's gradient against the numerical one (float64)
        print(f"small mode: {SMALL}")
        """, imports=textwrap.indent(",\n".join(layer_imports) + ",", "    ")),
    ]


def _data_cells():
    return [
        md("""
        ## Data

        `load_coco_data` returns a dict: captions as word indices (`<START> ... <END>` padded with
        `<NULL>`), the index of each caption's image, one feature vector per image (512 PCA components
        of VGG-16 fc7 for COCO; for the shapes dataset, the same format from a fixed random-weight
        convolutional featurizer), the vocabulary and the image URLs.
        """),
        code("""
        USING_COCO = bool(os.environ.get("CS231N_COCO_DIR"))
        if USING_COCO:
            data_dir = None  # load_coco_data reads $CS231N_COCO_DIR
            print("Using the COCO captioning release in", os.environ["CS231N_COCO_DIR"])
        else:
            # CS231N_SHAPES_SIZE=tiny (the tests) picks a 60-image version of the dataset.
            data_dir = ensure_shapes_dataset(size=os.environ.get("CS231N_SHAPES_SIZE", "default"))
            print("Using the synthetic shapes dataset in", data_dir.name)
        data = load_coco_data(base_dir=data_dir)

        for key, value in data.items():
            if isinstance(value, np.ndarray):
                print(f"{key:17s} {str(value.shape):14s} {value.dtype}")
            else:
                print(f"{key:17s} {type(value).__name__} of {len(value)}")
        """),
        md("""
        ### Look at the data

        Images come from `image_from_url`, which reads `file://` URLs (the shapes dataset) and downloads
        http(s) ones (COCO's Flickr links, many of them dead). With `placeholder=True` a dead link gives a
        grey image with a cross and a printed reason instead of stopping the notebook.
        """),
        code("""
        np.random.seed(231)
        captions, features, urls = sample_coco_minibatch(data, batch_size=4, split="train")
        fig, axes = plt.subplots(1, 4, figsize=(13, 4))
        for ax, caption, url in zip(axes, captions, urls):
            ax.imshow(image_from_url(url, placeholder=True))
            ax.set_title(textwrap.fill(decode_captions(caption, data["idx_to_word"]), 30), fontsize=9)
            ax.axis("off")
        plt.show()

        # Every image has several reference captions; the minibatch above drew one of them per image.
        references = references_from_data(data, "val")
        first_image = next(iter(references))
        print(f"val image {first_image} has {len(references[first_image])} captions:")
        for caption in references[first_image]:
            print("   ", caption)
        """),
    ]


def _common_layer_cells():
    """Word embedding, temporal affine and temporal softmax loss: the RNN notebook checks them."""
    return [
        md("""
        ## Word embedding

        Each word index picks a row of the embedding matrix `W` (V, D). In the backward pass, gradients
        of repeated words add up in the same row.
        """),
        code("""
        N, T, V, D = 2, 4, 5, 3
        x = np.array([[0, 3, 1, 2], [2, 1, 0, 3]])
        W = np.linspace(0, 1, num=V * D).reshape(V, D)
        out, _ = word_embedding_forward(x, W)
        err = rel_error(out, W[x])
        print(f"forward  relative error: {err:.2e}")
        assert err < FORWARD_TOL, f"forward relative error {err:.2e} is above {FORWARD_TOL:.0e}"

        np.random.seed(231)
        x = np.random.randint(V, size=(N, T))  # repeats on purpose
        W = np.random.randn(V, D)
        out, cache = word_embedding_forward(x, W)
        dout = np.random.randn(*out.shape)
        dW = word_embedding_backward(dout, cache)
        dW_num = eval_numerical_gradient_array(lambda W_: word_embedding_forward(x, W_)[0], W, dout)
        err = rel_error(dW, dW_num)
        print(f"dW       relative error: {err:.2e}")
        assert err < LAYER_TOL, f"dW relative error {err:.2e} is above {LAYER_TOL:.0e}"
        """),
        md("""
        ## Temporal affine layer

        At every timestep the hidden state (N, T, D) is mapped to scores over the vocabulary with one
        shared affine map: `out[n, t] = x[n, t] @ w + b`.
        """),
        code("""
        np.random.seed(231)
        N, T, D, M = 2, 3, 4, 5
        x = np.random.randn(N, T, D)
        w = np.random.randn(D, M)
        b = np.random.randn(M)
        out, cache = temporal_affine_forward(x, w, b)
        err = rel_error(out, np.einsum("ntd,dm->ntm", x, w) + b)
        print(f"forward  relative error: {err:.2e}")
        assert err < FORWARD_TOL, f"forward relative error {err:.2e} is above {FORWARD_TOL:.0e}"

        dout = np.random.randn(*out.shape)
        dx, dw, db = temporal_affine_backward(dout, cache)
        numeric = {
            "dx": eval_numerical_gradient_array(lambda x_: temporal_affine_forward(x_, w, b)[0], x, dout),
            "dw": eval_numerical_gradient_array(lambda w_: temporal_affine_forward(x, w_, b)[0], w, dout),
            "db": eval_numerical_gradient_array(lambda b_: temporal_affine_forward(x, w, b_)[0], b, dout),
        }
        for name, analytic in (("dx", dx), ("dw", dw), ("db", db)):
            err = rel_error(analytic, numeric[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < LAYER_TOL, f"{name} relative error {err:.2e} is above {LAYER_TOL:.0e}"
        """),
        md("""
        ## Temporal softmax loss

        The loss is the softmax cross-entropy of the next word at every timestep, counted only where
        `mask` is true (not on `<NULL>` padding), summed over time and divided by the minibatch size N.
        With near-zero scores every word has probability 1/V, so the loss is about
        `log(V)` times the average number of unmasked steps per caption.
        """),
        code("""
        np.random.seed(231)
        for N, T, V, p in ((100, 1, 10, 1.0), (100, 10, 10, 1.0), (5000, 10, 10, 0.1)):
            x = 0.001 * np.random.randn(N, T, V)
            y = np.random.randint(V, size=(N, T))
            mask = np.random.rand(N, T) <= p
            loss, _ = temporal_softmax_loss(x, y, mask)
            expected = T * p * np.log(V)
            print(f"N={N:4d} T={T:2d} V={V} p={p}: loss {loss:.4f}, expected about {expected:.4f}")
            assert abs(loss - expected) < 0.05 * expected, "the loss is far from log(V) per unmasked step"

        N, T, V = 7, 8, 9
        x = np.random.randn(N, T, V)
        y = np.random.randint(V, size=(N, T))
        mask = np.random.rand(N, T) > 0.5
        loss, dx = temporal_softmax_loss(x, y, mask)
        dx_num = eval_numerical_gradient(lambda x_: temporal_softmax_loss(x_, y, mask)[0], x, verbose=False)
        err = rel_error(dx, dx_num)
        print(f"dx       relative error: {err:.2e}")
        assert err < LAYER_TOL, f"dx relative error {err:.2e} is above {LAYER_TOL:.0e}"
        """),
    ]


def _model_cells(cell, Cell, feature_range, expected_loss):
    return [
        md("""
        ## The captioning model

        `CaptioningRNN` projects the image features to the initial hidden state, embeds the caption's
        words, runs the <<Cell>> over them, maps every hidden state to word scores and takes the temporal
        softmax loss of predicting each next word. Its input is the caption without its last word and
        its target the caption without `<START>`.

        With every parameter set to a fixed ramp of values, the loss is a known number (the same check
        as the cs231n assignment, so any implementation of the same model gives it).
        """, Cell=Cell),
        code("""
        N, D, W, H = 10, 20, 30, 40
        word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
        V = len(word_to_idx)
        T = 13

        model = CaptioningRNN(word_to_idx, input_dim=D, wordvec_dim=W, hidden_dim=H, cell_type="<<cell>>",
                              dtype=np.float64)
        for name, param in model.params.items():
            model.params[name] = np.linspace(-1.4, 1.3, num=param.size).reshape(*param.shape)

        features = np.linspace(<<feature_range>>, num=N * D).reshape(N, D)
        captions = (np.arange(N * T) % V).reshape(N, T)
        loss, grads = model.loss(features, captions)
        expected_loss = <<expected_loss>>
        print(f"loss {loss:.11f}, expected {expected_loss:.11f}, difference {abs(loss - expected_loss):.1e}")
        assert abs(loss - expected_loss) < 1e-9, "the model's loss differs from the expected value"
        """, cell=cell, feature_range=feature_range, expected_loss=expected_loss),
        md("""
        ### Gradient check of the whole model

        A tiny float64 model; every parameter's analytic gradient is compared with a central-difference
        estimate of the loss. The relative error is taken element by element, so it is only meaningful
        where the gradient is not tiny next to the rounding error of the estimate (about
        `1e-16 * loss / h`). Hence the parameters are replaced by random values of a moderate size first
        (at initialization the word vectors are `randn / 100`, which makes the gradient of `Wx` tiny too),
        and the step is `h = 1e-4`, whose truncation error (of order `h**2`) is still far below the
        threshold.
        """),
        code("""
        np.random.seed(231)
        batch_size, timesteps = 2, 3
        input_dim, wordvec_dim, hidden_dim = 4, 5, 6
        word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
        vocab_size = len(word_to_idx)
        captions = np.random.randint(vocab_size, size=(batch_size, timesteps))
        features = np.random.randn(batch_size, input_dim)

        model = CaptioningRNN(word_to_idx, input_dim=input_dim, wordvec_dim=wordvec_dim, hidden_dim=hidden_dim,
                              cell_type="<<cell>>", dtype=np.float64)
        for name, param in model.params.items():
            model.params[name] = 0.5 * np.random.randn(*param.shape)
        loss, grads = model.loss(features, captions)
        for name in sorted(model.params):
            # eval_numerical_gradient perturbs model.params[name] in place; the lambda ignores its argument.
            grad_num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                               verbose=False, h=1e-4)
            err = rel_error(grad_num, grads[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < MODEL_TOL, f"{name} relative error {err:.2e} is above {MODEL_TOL:.0e}"
        """, cell=cell),
    ]


def _training_cells(cell, Cell):
    return [
        md("""
        ## Overfit a small dataset

        With only 50 training captions a model this size should drive the training loss from about 50
        (`log V` for each of the 10 to 15 words of a caption) to near zero in 100 iterations: a quick
        test that the model, the solver and the optimizer work together. (`num_val_images=0` skips the
        per-epoch validation the solver would otherwise run.)
        """),
        code("""
        np.random.seed(231)
        small_data = load_coco_data(base_dir=data_dir, max_train=50)

        small_<<cell>>_model = CaptioningRNN(
            cell_type="<<cell>>",
            word_to_idx=data["word_to_idx"],
            input_dim=data["train_features"].shape[1],
            hidden_dim=512,
            wordvec_dim=256,
        )
        small_<<cell>>_solver = CaptioningSolver(
            small_<<cell>>_model, small_data,
            update_rule="adam",
            num_epochs=50,
            batch_size=25,
            optim_config={"learning_rate": 5e-3},
            lr_decay=0.95,
            verbose=True,
            print_every=10,
            num_val_images=0,
        )
        small_<<cell>>_solver.train()

        plt.figure(figsize=(6, 4))
        plt.plot(small_<<cell>>_solver.loss_history)
        plt.xlabel("Iteration")
        plt.ylabel("Loss")
        plt.title("Training loss history (<<Cell>>, 50 captions)")
        plt.show()
        first_loss, final_loss = small_<<cell>>_solver.loss_history[0], small_<<cell>>_solver.loss_history[-1]
        print(f"First loss: {first_loss:.4f}, final loss: {final_loss:.4f}")
        assert final_loss < 0.05 * first_loss, "the model did not overfit 50 captions"
        """, cell=cell, Cell=Cell),
        md("""
        ## Sampling

        At test time the model starts from `<START>` and feeds back its own most likely word
        (`CaptioningRNN.sample`; `caption_features` returns the captions as strings). On training
        images the overfit model should reproduce the captions it memorized; on validation images,
        which it has never seen, it has learned nothing useful yet.
        """),
        code("""
        np.random.seed(231)
        for split in ("train", "val"):
            captions, features, urls = sample_coco_minibatch(small_data, split=split, batch_size=4)
            generated = small_<<cell>>_model.caption_features(features)
            references = [strip_framing(c) for c in decode_captions(captions, data["idx_to_word"])]
            images = [image_from_url(url, placeholder=True) for url in urls]
            print(f"{split}: generated (gen) and reference (ref) captions")
            caption_grid(images, generated, references, ncols=4)
            plt.show()
        """, cell=cell),
        md("""
        ## Scoring captions

        `evaluate_model` is the assignment's measure: unigram BLEU of each sampled caption against the
        one reference caption drawn with it, averaged over 1000 random minibatch entries per split.
        `score_captions` computes what papers report: corpus BLEU-1..4 and CIDEr-D, each candidate
        against *all* reference captions of its image (`score_model` captions a split's images and calls
        it). CIDEr-D runs from 0 to 10 on this scale.
        """),
        code("""
        np.random.seed(231)
        bleu = evaluate_model(small_<<cell>>_model, small_data)

        references = {
            "img1": ["a large red circle", "a big red disk"],
            "img2": ["a small blue square above a green star", "a tiny blue box over a green star"],
            "img3": ["a black triangle to the left of a yellow diamond"],
        }
        candidates = {"img1": "a large red circle", "img2": "a small blue square",
                      "img3": "a yellow diamond to the left of a black triangle"}
        print("toy corpus:", {k: round(v, 3) for k, v in score_captions(references, candidates).items()})

        for split in ("train", "val"):
            scores = score_model(small_<<cell>>_model, small_data, split=split, num_images=500)
            print(f"{split:5s} (multi-reference):", {k: round(v, 3) for k, v in scores.items()})
        """, cell=cell),
        md("""
        ## Greedy decoding and beam search

        Greedy decoding takes the most likely word at every step, which need not give the most likely
        caption. Beam search keeps the `beam_size` best partial captions of each image and returns the
        best finished one; its log-probability is never below the greedy caption's (the greedy caption is
        always among its candidates). Every extra word multiplies in one more probability below 1, so
        ranking by log-probability favours short captions (in the extreme an empty one, `<END>` alone)
        when the model is unsure, as the overfit model is on validation images. `length_penalty=alpha`
        ranks by `log p / length**alpha` instead.
        """),
        code("""
        np.random.seed(231)
        captions, features, urls = sample_coco_minibatch(small_data, split="val", batch_size=5)
        greedy, greedy_logp = small_<<cell>>_model.sample(features, return_log_probs=True)
        beam, beam_logp = small_<<cell>>_model.sample(features, beam_size=5, return_log_probs=True)
        normed, normed_logp = small_<<cell>>_model.sample(
            features, beam_size=5, length_penalty=1.0, return_log_probs=True)
        rows = zip(decode_captions(greedy, data["idx_to_word"]), greedy_logp,
                   decode_captions(beam, data["idx_to_word"]), beam_logp,
                   decode_captions(normed, data["idx_to_word"]), normed_logp)
        for g, g_logp, b, b_logp, n, n_logp in rows:
            print(f"greedy                 (log p {g_logp:6.2f}): {g}")
            print(f"beam 5                 (log p {b_logp:6.2f}): {b}")
            print(f"beam 5, length penalty (log p {n_logp:6.2f}): {n}\\n")
        assert np.all(beam_logp >= greedy_logp - 1e-6), "beam search found a less likely caption than greedy"
        """, cell=cell),
    ]


def _good_model_cells(cell, Cell, full_sizes, full_epochs):
    return [
        md("""
        ## Train a good model

        Now the whole training set, with a validation pass after every epoch: the solver captions a
        fixed set of 200 val images, scores them with BLEU and CIDEr-D against all their references, and
        keeps the parameters of the epoch with the best CIDEr (`solver.best_params`). Adam with learning
        rate decay and gradient-norm clipping. On two CPU cores this takes a few minutes on the default
        shapes dataset; on COCO it trains on a 100,000-caption subset and takes longer.
        """),
        code("""
        if SMALL:
            sizes = dict(wordvec_dim=64, hidden_dim=64, num_epochs=2, max_train=500)
        elif USING_COCO:
            sizes = dict(wordvec_dim=256, hidden_dim=512, num_epochs=2, max_train=100_000)
        else:
            sizes = dict(<<full_sizes>>, num_epochs=<<full_epochs>>, max_train=None)
        print(sizes)

        np.random.seed(0)
        train_data = data if sizes["max_train"] is None else load_coco_data(base_dir=data_dir,
                                                                            max_train=sizes["max_train"])
        <<cell>>_model = CaptioningRNN(
            cell_type="<<cell>>",
            word_to_idx=data["word_to_idx"],
            input_dim=data["train_features"].shape[1],
            hidden_dim=sizes["hidden_dim"],
            wordvec_dim=sizes["wordvec_dim"],
        )
        <<cell>>_solver = CaptioningSolver(
            <<cell>>_model, train_data,
            update_rule="adam",
            optim_config={"learning_rate": 5e-3},
            lr_decay=0.9,
            batch_size=100,
            num_epochs=sizes["num_epochs"],
            grad_clip=5.0,
            num_val_images=200,
            seed=0,
            print_every=100,
        )
        start = time.time()
        <<cell>>_solver.train()
        print(f"trained in {time.time() - start:.0f} s; best val CIDEr {<<cell>>_solver.best_val_cider:.3f}")
        <<cell>>_model.params.update(<<cell>>_solver.best_params)

        plot_training_curves(<<cell>>_solver.loss_history, <<cell>>_solver.val_history,
                             title="<<Cell>> captioning model")
        plt.show()
        """, cell=cell, Cell=Cell, full_sizes=full_sizes, full_epochs=str(full_epochs)),
        md("""
        ### Scores and captions of the trained model

        The classic BLEU first, then the multi-reference scores on the validation images with greedy
        decoding and with beam search, then a look at some validation images.
        """),
        code("""
        np.random.seed(231)
        evaluate_model(<<cell>>_model, data)

        num_images = min(1000, len(references_from_data(data, "val")))
        print(f"\\nval, {num_images} images, each against all its captions:")
        for beam_size in (1, 3):
            scores = score_model(<<cell>>_model, data, split="val", num_images=num_images, beam_size=beam_size)
            name = "greedy" if beam_size == 1 else f"beam {beam_size}"
            print(f"  {name:7s}" + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))

        val_references = references_from_data(data, "val")
        image_ids = list(val_references)[:8]
        generated = <<cell>>_model.caption_features(data["val_features"][image_ids])
        images = [image_from_url(data["val_urls"][i], placeholder=True) for i in image_ids]
        caption_grid(images, generated, [strip_framing(val_references[i][0]) for i in image_ids], ncols=4)
        plt.show()
        """, cell=cell),
    ]


# ----------------------------------------------------------------------------------------------------
# RNN_Captioning
# ----------------------------------------------------------------------------------------------------

def rnn_captioning_cells():
    layer_imports = ["rnn_backward", "rnn_forward", "rnn_step_backward", "rnn_step_forward",
                     "temporal_affine_backward", "temporal_affine_forward", "temporal_softmax_loss",
                     "word_embedding_backward", "word_embedding_forward"]
    cells = _intro_cells("Image captioning with a vanilla RNN",
                         "A vanilla recurrent network, `h_t = tanh(x_t Wx + h_{t-1} Wh + b)`, learns to "
                         "caption images from their feature vectors.")
    cells += _setup_cells(layer_imports)
    cells += _data_cells()
    cells += [
        md("""
        ## Vanilla RNN: step forward

        One timestep: `next_h = tanh(x @ Wx + prev_h @ Wh + b)`. The check compares `rnn_step_forward`
        with that formula written out here.
        """),
        code("""
        N, D, H = 3, 10, 4
        x = np.linspace(-0.4, 0.7, num=N * D).reshape(N, D)
        prev_h = np.linspace(-0.2, 0.5, num=N * H).reshape(N, H)
        Wx = np.linspace(-0.1, 0.9, num=D * H).reshape(D, H)
        Wh = np.linspace(-0.3, 0.7, num=H * H).reshape(H, H)
        b = np.linspace(-0.2, 0.4, num=H)

        next_h, _ = rnn_step_forward(x, prev_h, Wx, Wh, b)
        expected_next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
        print(next_h)
        err = rel_error(next_h, expected_next_h)
        print(f"next_h   relative error: {err:.2e}")
        assert err < FORWARD_TOL, f"next_h relative error {err:.2e} is above {FORWARD_TOL:.0e}"
        """),
        md("""
        ## Vanilla RNN: step backward

        The gradients of `tanh(a)` flow back through `1 - next_h**2`. Each analytic gradient is compared
        with a central-difference estimate of `sum(next_h * dnext_h)`.
        """),
        code("""
        np.random.seed(231)
        N, D, H = 4, 5, 6
        x = np.random.randn(N, D)
        h = np.random.randn(N, H)
        Wx = np.random.randn(D, H)
        Wh = np.random.randn(H, H)
        b = np.random.randn(H)

        out, cache = rnn_step_forward(x, h, Wx, Wh, b)
        dnext_h = np.random.randn(*out.shape)
        dx, dprev_h, dWx, dWh, db = rnn_step_backward(dnext_h, cache)

        numeric = {
            "dx": eval_numerical_gradient_array(lambda x_: rnn_step_forward(x_, h, Wx, Wh, b)[0], x, dnext_h),
            "dprev_h": eval_numerical_gradient_array(lambda h_: rnn_step_forward(x, h_, Wx, Wh, b)[0], h, dnext_h),
            "dWx": eval_numerical_gradient_array(lambda Wx_: rnn_step_forward(x, h, Wx_, Wh, b)[0], Wx, dnext_h),
            "dWh": eval_numerical_gradient_array(lambda Wh_: rnn_step_forward(x, h, Wx, Wh_, b)[0], Wh, dnext_h),
            "db": eval_numerical_gradient_array(lambda b_: rnn_step_forward(x, h, Wx, Wh, b_)[0], b, dnext_h),
        }
        analytic = {"dx": dx, "dprev_h": dprev_h, "dWx": dWx, "dWh": dWh, "db": db}
        for name in analytic:
            err = rel_error(analytic[name], numeric[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < LAYER_TOL, f"{name} relative error {err:.2e} is above {LAYER_TOL:.0e}"
        """),
        md("""
        ## Vanilla RNN: forward over a sequence

        `rnn_forward` runs all T timesteps (it projects every timestep's input with one matrix product
        rather than calling the step function T times). It must give the hidden states of the plain loop
        over the formula.
        """),
        code("""
        N, T, D, H = 2, 3, 4, 5
        x = np.linspace(-0.1, 0.3, num=N * T * D).reshape(N, T, D)
        h0 = np.linspace(-0.3, 0.1, num=N * H).reshape(N, H)
        Wx = np.linspace(-0.2, 0.4, num=D * H).reshape(D, H)
        Wh = np.linspace(-0.4, 0.1, num=H * H).reshape(H, H)
        b = np.linspace(-0.7, 0.1, num=H)

        h, _ = rnn_forward(x, h0, Wx, Wh, b)
        expected_h = np.zeros((N, T, H))
        prev_h = h0
        for t in range(T):
            prev_h = np.tanh(x[:, t] @ Wx + prev_h @ Wh + b)
            expected_h[:, t] = prev_h
        print(h)
        err = rel_error(h, expected_h)
        print(f"h        relative error: {err:.2e}")
        assert err < FORWARD_TOL, f"h relative error {err:.2e} is above {FORWARD_TOL:.0e}"
        """),
        md("""
        ## Vanilla RNN: backward over a sequence

        Backpropagation through time: the upstream gradient `dh` reaches every timestep's hidden state,
        and each step also passes a gradient back to the step before it.
        """),
        code("""
        np.random.seed(231)
        N, D, T, H = 2, 3, 10, 5
        x = np.random.randn(N, T, D)
        h0 = np.random.randn(N, H)
        Wx = np.random.randn(D, H)
        Wh = np.random.randn(H, H)
        b = np.random.randn(H)

        out, cache = rnn_forward(x, h0, Wx, Wh, b)
        dout = np.random.randn(*out.shape)
        dx, dh0, dWx, dWh, db = rnn_backward(dout, cache)

        numeric = {
            "dx": eval_numerical_gradient_array(lambda x_: rnn_forward(x_, h0, Wx, Wh, b)[0], x, dout),
            "dh0": eval_numerical_gradient_array(lambda h0_: rnn_forward(x, h0_, Wx, Wh, b)[0], h0, dout),
            "dWx": eval_numerical_gradient_array(lambda Wx_: rnn_forward(x, h0, Wx_, Wh, b)[0], Wx, dout),
            "dWh": eval_numerical_gradient_array(lambda Wh_: rnn_forward(x, h0, Wx, Wh_, b)[0], Wh, dout),
            "db": eval_numerical_gradient_array(lambda b_: rnn_forward(x, h0, Wx, Wh, b_)[0], b, dout),
        }
        analytic = {"dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "db": db}
        for name in analytic:
            err = rel_error(analytic[name], numeric[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < SEQUENCE_TOL, f"{name} relative error {err:.2e} is above {SEQUENCE_TOL:.0e}"
        """),
    ]
    cells += _common_layer_cells()
    cells += _model_cells("rnn", "vanilla RNN", "-1.5, 0.3", "9.83235591003")
    cells += _training_cells("rnn", "RNN")
    cells += _good_model_cells("rnn", "RNN", "wordvec_dim=256, hidden_dim=256", 6)
    return cells


# ----------------------------------------------------------------------------------------------------
# LSTM_Captioning
# ----------------------------------------------------------------------------------------------------

def lstm_captioning_cells():
    layer_imports = ["gru_backward", "gru_forward", "lstm_backward", "lstm_forward", "lstm_step_backward",
                     "lstm_step_forward"]
    cells = _intro_cells("Image captioning with an LSTM",
                         "A vanilla RNN's gradients shrink or grow by a factor at every step of "
                         "backpropagation through time. The LSTM carries a cell state that is changed "
                         "only by gated additions, which lets gradients reach far back; here it replaces "
                         "the RNN of `RNN_Captioning.ipynb` in the same captioning model. (The word "
                         "embedding, temporal affine layer and loss are checked in that notebook.) A last "
                         "section checks the GRU, the package's third cell type.")
    cells += _setup_cells(layer_imports)
    cells += _data_cells()
    cells += [
        md("""
        ## LSTM: step forward

        With hidden size H, one matrix product gives the activation `a = x @ Wx + prev_h @ Wh + b` of
        shape (N, 4H), split into four blocks in the order **i, f, o, g**:
        `i, f, o = sigmoid(...)`, `g = tanh(...)`, `next_c = f * prev_c + i * g`,
        `next_h = o * tanh(next_c)`. The check writes these equations out.
        """),
        code("""
        N, D, H = 3, 4, 5
        x = np.linspace(-0.4, 1.2, num=N * D).reshape(N, D)
        prev_h = np.linspace(-0.3, 0.7, num=N * H).reshape(N, H)
        prev_c = np.linspace(-0.4, 0.9, num=N * H).reshape(N, H)
        Wx = np.linspace(-2.1, 1.3, num=4 * D * H).reshape(D, 4 * H)
        Wh = np.linspace(-0.7, 2.2, num=4 * H * H).reshape(H, 4 * H)
        b = np.linspace(0.3, 0.7, num=4 * H)

        next_h, next_c, _ = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)

        a_i, a_f, a_o, a_g = np.split(x @ Wx + prev_h @ Wh + b, 4, axis=1)
        expected_next_c = prev_c / (1 + np.exp(-a_f)) + np.tanh(a_g) / (1 + np.exp(-a_i))
        expected_next_h = np.tanh(expected_next_c) / (1 + np.exp(-a_o))
        for name, value, expected in (("next_h", next_h, expected_next_h), ("next_c", next_c, expected_next_c)):
            err = rel_error(value, expected)
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < FORWARD_TOL, f"{name} relative error {err:.2e} is above {FORWARD_TOL:.0e}"
        """),
        md("""
        ## LSTM: step backward

        The step has two outputs, so the numerical gradient of each input is the sum of two directional
        derivatives: of `next_h` along `dnext_h` and of `next_c` along `dnext_c`.
        """),
        code("""
        np.random.seed(231)
        N, D, H = 4, 5, 6
        x = np.random.randn(N, D)
        prev_h = np.random.randn(N, H)
        prev_c = np.random.randn(N, H)
        Wx = np.random.randn(D, 4 * H)
        Wh = np.random.randn(H, 4 * H)
        b = np.random.randn(4 * H)

        next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)
        dnext_h = np.random.randn(*next_h.shape)
        dnext_c = np.random.randn(*next_c.shape)
        dx, dh, dc, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)

        forward = {
            "dx": (x, lambda x_: lstm_step_forward(x_, prev_h, prev_c, Wx, Wh, b)),
            "dh": (prev_h, lambda h_: lstm_step_forward(x, h_, prev_c, Wx, Wh, b)),
            "dc": (prev_c, lambda c_: lstm_step_forward(x, prev_h, c_, Wx, Wh, b)),
            "dWx": (Wx, lambda Wx_: lstm_step_forward(x, prev_h, prev_c, Wx_, Wh, b)),
            "dWh": (Wh, lambda Wh_: lstm_step_forward(x, prev_h, prev_c, Wx, Wh_, b)),
            "db": (b, lambda b_: lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b_)),
        }
        analytic = {"dx": dx, "dh": dh, "dc": dc, "dWx": dWx, "dWh": dWh, "db": db}
        for name, (array, f) in forward.items():
            numeric = (eval_numerical_gradient_array(lambda v: f(v)[0], array, dnext_h)    # through next_h
                       + eval_numerical_gradient_array(lambda v: f(v)[1], array, dnext_c))  # through next_c
            err = rel_error(analytic[name], numeric)
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < LAYER_TOL, f"{name} relative error {err:.2e} is above {LAYER_TOL:.0e}"
        """),
        md("""
        ## LSTM: forward over a sequence

        The initial cell state is zero. `lstm_forward` must give the hidden states of the plain loop
        over the equations.
        """),
        code("""
        N, D, H, T = 2, 5, 4, 3
        x = np.linspace(-0.4, 0.6, num=N * T * D).reshape(N, T, D)
        h0 = np.linspace(-0.4, 0.8, num=N * H).reshape(N, H)
        Wx = np.linspace(-0.2, 0.9, num=4 * D * H).reshape(D, 4 * H)
        Wh = np.linspace(-0.3, 0.6, num=4 * H * H).reshape(H, 4 * H)
        b = np.linspace(0.2, 0.7, num=4 * H)

        h, _ = lstm_forward(x, h0, Wx, Wh, b)

        expected_h = np.zeros((N, T, H))
        prev_h, prev_c = h0, np.zeros((N, H))
        for t in range(T):
            a_i, a_f, a_o, a_g = np.split(x[:, t] @ Wx + prev_h @ Wh + b, 4, axis=1)
            prev_c = prev_c / (1 + np.exp(-a_f)) + np.tanh(a_g) / (1 + np.exp(-a_i))
            prev_h = np.tanh(prev_c) / (1 + np.exp(-a_o))
            expected_h[:, t] = prev_h
        print(h)
        err = rel_error(h, expected_h)
        print(f"h        relative error: {err:.2e}")
        assert err < FORWARD_TOL, f"h relative error {err:.2e} is above {FORWARD_TOL:.0e}"
        """),
        md("""
        ## LSTM: backward over a sequence

        Backpropagation through time carries two gradients from step to step, one for the hidden state
        and one for the cell state; the cell state's passes through the forget gate only.
        """),
        code("""
        np.random.seed(231)
        N, D, T, H = 2, 3, 10, 6
        x = np.random.randn(N, T, D)
        h0 = np.random.randn(N, H)
        Wx = np.random.randn(D, 4 * H)
        Wh = np.random.randn(H, 4 * H)
        b = np.random.randn(4 * H)

        out, cache = lstm_forward(x, h0, Wx, Wh, b)
        dout = np.random.randn(*out.shape)
        dx, dh0, dWx, dWh, db = lstm_backward(dout, cache)

        numeric = {
            "dx": eval_numerical_gradient_array(lambda x_: lstm_forward(x_, h0, Wx, Wh, b)[0], x, dout),
            "dh0": eval_numerical_gradient_array(lambda h0_: lstm_forward(x, h0_, Wx, Wh, b)[0], h0, dout),
            "dWx": eval_numerical_gradient_array(lambda Wx_: lstm_forward(x, h0, Wx_, Wh, b)[0], Wx, dout),
            "dWh": eval_numerical_gradient_array(lambda Wh_: lstm_forward(x, h0, Wx, Wh_, b)[0], Wh, dout),
            "db": eval_numerical_gradient_array(lambda b_: lstm_forward(x, h0, Wx, Wh, b_)[0], b, dout),
        }
        analytic = {"dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "db": db}
        for name in analytic:
            err = rel_error(analytic[name], numeric[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < SEQUENCE_TOL, f"{name} relative error {err:.2e} is above {SEQUENCE_TOL:.0e}"
        """),
    ]
    cells += _model_cells("lstm", "LSTM", "-0.5, 1.7", "9.82445935443")
    cells += _training_cells("lstm", "LSTM")
    cells += _good_model_cells("lstm", "LSTM", "wordvec_dim=256, hidden_dim=256", 6)
    cells += [
        md("""
        ## The GRU

        The package's third cell type follows the equations of `torch.nn.GRU`, gates **r, z, n** along the
        3H axis and a second bias `bh` on the hidden projection:
        `r = sigmoid(x Wx_r + b_r + h Wh_r + bh_r)`, `z = sigmoid(x Wx_z + b_z + h Wh_z + bh_z)`,
        `n = tanh(x Wx_n + b_n + r * (h Wh_n + bh_n))`, `next_h = (1 - z) * n + z * h`.
        The same three checks: forward against the equations, backward against numerical gradients, and
        the whole model's gradient (`CaptioningRNN(cell_type="gru")`).
        """),
        code("""
        np.random.seed(231)
        N, D, T, H = 2, 3, 6, 4
        x = np.random.randn(N, T, D)
        h0 = np.random.randn(N, H)
        Wx = np.random.randn(D, 3 * H)
        Wh = np.random.randn(H, 3 * H)
        b = np.random.randn(3 * H)
        bh = np.random.randn(3 * H)

        h, cache = gru_forward(x, h0, Wx, Wh, b, bh)
        expected_h = np.zeros((N, T, H))
        prev_h = h0
        for t in range(T):
            ax_r, ax_z, ax_n = np.split(x[:, t] @ Wx + b, 3, axis=1)
            ah_r, ah_z, ah_n = np.split(prev_h @ Wh + bh, 3, axis=1)
            r = 1 / (1 + np.exp(-(ax_r + ah_r)))
            z = 1 / (1 + np.exp(-(ax_z + ah_z)))
            n = np.tanh(ax_n + r * ah_n)
            prev_h = (1 - z) * n + z * prev_h
            expected_h[:, t] = prev_h
        err = rel_error(h, expected_h)
        print(f"h        relative error: {err:.2e}")
        assert err < FORWARD_TOL, f"h relative error {err:.2e} is above {FORWARD_TOL:.0e}"

        dout = np.random.randn(*h.shape)
        dx, dh0, dWx, dWh, db, dbh = gru_backward(dout, cache)
        numeric = {
            "dx": eval_numerical_gradient_array(lambda x_: gru_forward(x_, h0, Wx, Wh, b, bh)[0], x, dout),
            "dh0": eval_numerical_gradient_array(lambda h0_: gru_forward(x, h0_, Wx, Wh, b, bh)[0], h0, dout),
            "dWx": eval_numerical_gradient_array(lambda Wx_: gru_forward(x, h0, Wx_, Wh, b, bh)[0], Wx, dout),
            "dWh": eval_numerical_gradient_array(lambda Wh_: gru_forward(x, h0, Wx, Wh_, b, bh)[0], Wh, dout),
            "db": eval_numerical_gradient_array(lambda b_: gru_forward(x, h0, Wx, Wh, b_, bh)[0], b, dout),
            "dbh": eval_numerical_gradient_array(lambda bh_: gru_forward(x, h0, Wx, Wh, b, bh_)[0], bh, dout),
        }
        analytic = {"dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "db": db, "dbh": dbh}
        for name in analytic:
            err = rel_error(analytic[name], numeric[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < SEQUENCE_TOL, f"{name} relative error {err:.2e} is above {SEQUENCE_TOL:.0e}"
        """),
        code("""
        np.random.seed(231)
        word_to_idx = {"<NULL>": 0, "cat": 2, "dog": 3}
        captions = np.random.randint(len(word_to_idx), size=(2, 3))
        features = np.random.randn(2, 4)
        model = CaptioningRNN(word_to_idx, input_dim=4, wordvec_dim=5, hidden_dim=6, cell_type="gru",
                              dtype=np.float64)
        for name, param in model.params.items():
            model.params[name] = 0.5 * np.random.randn(*param.shape)
        loss, grads = model.loss(features, captions)
        for name in sorted(model.params):
            grad_num = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name],
                                               verbose=False, h=1e-4)
            err = rel_error(grad_num, grads[name])
            print(f"{name:8s} relative error: {err:.2e}")
            assert err < MODEL_TOL, f"{name} relative error {err:.2e} is above {MODEL_TOL:.0e}"
        """),
    ]
    return cells


# ----------------------------------------------------------------------------------------------------
# Language_Model
# ----------------------------------------------------------------------------------------------------

def language_model_cells():
    return [
        md("""
        # A word-level language model

        The layers of the captioning notebooks, without the image: a recurrent network reads a text one
        word at a time and learns to predict the next word (`cs231n.classifiers.language_model`). It is
        trained on Chapter I of *Alice's Adventures in Wonderland*, read from `../shared/data/alice.txt`
        beside the repository or from the file named by `CS231N_ALICE_TXT`. Without that file the
        notebook still runs: the sections that need it print why they are skipped, and the others use a
        short sample text.

        The steps: tokenize the text and number its words; cut the word stream into windows of inputs and
        next-word targets; check the model's loss and its gradients numerically; overfit a tiny text;
        train on the chapter while watching a held-out part of it; and sample new text at several
        temperatures. As in the captioning notebooks, every numerical check prints its relative error and
        asserts it is below a threshold, and `CS231N_NOTEBOOK_SMALL=1` shrinks the training for the
        tests.
        """),
        code("""
        import os

        import matplotlib.pyplot as plt
        import numpy as np

        from cs231n.classifiers.language_model import LanguageModelRNN
        from cs231n.gradient_check import eval_numerical_gradient, rel_error
        from cs231n.lm_solver import LanguageModelSolver
        from cs231n.text_utils import (
            TOKENIZERS,
            build_vocab,
            classic_tokenize,
            decode,
            default_alice_path,
            encode,
            join_tokens,
            make_windows,
            prepare_text_data,
            read_text,
            tokenize,
            word_tokenize,
        )

        %matplotlib inline
        plt.rcParams["figure.dpi"] = 80  # modest figures keep the committed notebook small

        # CS231N_NOTEBOOK_SMALL=1 (set by tests/test_notebooks.py) shrinks the slow parts.
        SMALL = os.environ.get("CS231N_NOTEBOOK_SMALL", "0") not in ("", "0")
        FORWARD_TOL = 1e-8  # a forward computation against the formula written out here
        MODEL_TOL = 5e-6    # the whole model's gradient against the numerical one (float64)
        print(f"small mode: {SMALL}")
        """),
        md("""
        ## The text
        """),
        code("""
        # A short text of our own for the demonstrations, and for when the chapter is not there.
        SAMPLE_TEXT = ("the cat sat on the mat . the dog sat on the log . "
                       "the cat saw the dog and the dog saw the cat .")

        text_path = default_alice_path()
        if os.path.isfile(text_path):
            text = read_text(text_path)
            print(f"{os.path.basename(text_path)}: {len(text):,} characters\\n")
            print(text[:500])
        else:
            text = None
            print(f"No text at {text_path}. Set CS231N_ALICE_TXT to a UTF-8 text file (or save Chapter I of Alice "
                  f"there, e.g. with cs231n.text_utils.download_gutenberg_alice). Training on it is skipped "
                  f"below; the other sections use a short sample text.")
        """),
        md("""
        ## Tokens, vocabulary and windows

        Two tokenizers. `classic_tokenize` lower-cases the text and splits it on every single space and
        newline, so punctuation stays glued to its word (`'alice,'` and `'alice'` are different words)
        and blank lines give empty-string tokens. `word_tokenize` splits off punctuation as tokens of
        its own, which makes the vocabulary smaller and every word more frequent.
        """),
        code("""
        snippet = text[:120] if text is not None else SAMPLE_TEXT
        print("classic:", classic_tokenize(snippet))
        print("words:  ", word_tokenize(snippet))
        if text is not None:
            for tokenizer in TOKENIZERS:
                tokens = tokenize(text, tokenizer)
                print(f"{tokenizer:8s} {len(tokens):5d} tokens, {len(set(tokens)):4d} distinct")
        """),
        md("""
        `build_vocab` numbers the distinct tokens, most frequent first, after `<UNK>` (index 0, for words
        the vocabulary leaves out). `make_windows` cuts the stream of indices into windows of T inputs;
        the targets are the same window shifted by one word.
        """),
        code("""
        tokens = tokenize(text if text is not None else SAMPLE_TEXT, "classic")
        word_to_idx, idx_to_word = build_vocab(tokens)
        print(f"V = {len(idx_to_word)}; the most frequent: {idx_to_word[:16]}")

        stream = encode(tokens, word_to_idx)
        inputs, targets = make_windows(stream, 8, stride=8)
        print(f"{inputs.shape[0]} non-overlapping windows of 8 words; the first two:")
        for row in range(2):
            print("  inputs: ", decode(inputs[row], idx_to_word))
            print("  targets:", decode(targets[row], idx_to_word))
        """),
        md("""
        ## The model's loss

        Word embedding, a recurrent layer started from a zero state, a temporal affine layer to scores
        over the vocabulary, and the softmax cross-entropy of the next word, averaged over all N * T
        targets (the captioning loss divides by N only), so that its `exp` is the perplexity. The check
        computes that mean from the model's scores with a log-softmax written out here. At initialization
        the prediction is close to uniform, so the loss starts near `log(V)`.
        """),
        code("""
        np.random.seed(231)
        V, N, T = 50, 6, 7
        inputs = np.random.randint(V, size=(N, T))
        targets = np.random.randint(V, size=(N, T))
        for cell_type in ("rnn", "lstm", "gru"):
            model = LanguageModelRNN(V, wordvec_dim=15, hidden_dim=100, cell_type=cell_type, dtype=np.float64,
                                     seed=0)
            loss, _ = model.loss(inputs, targets)
            scores = model.scores(inputs)                                    # (N, T, V)
            shifted = scores - scores.max(axis=2, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
            expected = -np.take_along_axis(log_p, targets[..., None], axis=2).mean()
            err = rel_error(np.array(loss), np.array(expected))
            print(f"{cell_type:4s}: loss {loss:.4f} (log V = {np.log(V):.4f}); "
                  f"mean cross-entropy relative error: {err:.2e}")
            assert err < FORWARD_TOL, f"{cell_type}: relative error {err:.2e} is above {FORWARD_TOL:.0e}"
            assert abs(loss - np.log(V)) < 0.5, f"{cell_type}: the initial loss {loss:.3f} is far from log(V)"
        """),
        md("""
        ### Gradient check of the whole model

        A small float64 model of each cell type; every parameter's analytic gradient is compared with a
        central-difference estimate of the loss, with the step `h = 1e-4` (see the same check in
        `RNN_Captioning.ipynb` for why).
        """),
        code("""
        np.random.seed(231)
        V, N, T = 10, 3, 5
        inputs = np.random.randint(V, size=(N, T))
        targets = np.random.randint(V, size=(N, T))
        for cell_type in ("rnn", "lstm", "gru"):
            model = LanguageModelRNN(V, wordvec_dim=4, hidden_dim=6, cell_type=cell_type, dtype=np.float64, seed=1)
            loss, grads = model.loss(inputs, targets)
            for name in sorted(model.params):
                # eval_numerical_gradient perturbs model.params[name] in place; the lambda ignores its argument.
                grad_num = eval_numerical_gradient(lambda _: model.loss(inputs, targets)[0], model.params[name],
                                                   verbose=False, h=1e-4)
                err = rel_error(grad_num, grads[name])
                print(f"{cell_type:4s} {name:8s} relative error: {err:.2e}")
                assert err < MODEL_TOL, f"{cell_type} {name}: relative error {err:.2e} is above {MODEL_TOL:.0e}"
        """),
        md("""
        ## Overfit a tiny text

        `prepare_text_data` does the steps above at once: tokens, vocabulary, every window of T words
        (`stride=1`) for training, and non-overlapping windows for measuring. `LanguageModelSolver`
        draws random minibatches of windows and, after every epoch, reports the per-token loss, the
        next-word accuracy and the perplexity. A model that can learn must get nearly every next word of
        a 30-word text right.
        """),
        code("""
        tiny = prepare_text_data(SAMPLE_TEXT, seq_len=8)
        tiny_model = LanguageModelRNN(len(tiny["idx_to_word"]), wordvec_dim=8, hidden_dim=32, cell_type="lstm",
                                      idx_to_word=tiny["idx_to_word"], seed=0)
        tiny_solver = LanguageModelSolver(tiny_model, tiny, update_rule="adam",
                                          optim_config={"learning_rate": 1e-2}, batch_size=10, num_epochs=100,
                                          seed=0, verbose=False)
        tiny_solver.train()
        last = tiny_solver.val_history[-1]
        print(f"after {last['epoch']} epochs: loss {last['train_loss']:.3f}, "
              f"accuracy {last['train_accuracy']:.1%}, perplexity {last['train_perplexity']:.2f}")
        assert last["train_accuracy"] > 0.9, "the model did not learn the tiny text"
        """),
        md("""
        ## Train on the chapter

        The classic setting: an LSTM with 15-dimensional word vectors and 100 hidden units, windows of 50
        words, minibatches of 30, Adam at 5e-4. The last 10% of the chapter is held out: training
        accuracy climbs as the model memorizes the text it sees, while the held-out perplexity shows how
        little one chapter teaches about English.
        """),
        code("""
        if text is None:
            print("Skipped: no text to train on (see the first cell of 'The text').")
        else:
            data = prepare_text_data(text, seq_len=50, tokenizer="classic", val_fraction=0.1)
            print(f"{data['num_train_tokens']} training tokens, V = {len(data['idx_to_word'])}, "
                  f"{data['train_inputs'].shape[0]} training windows, "
                  f"{data['val_inputs'].shape[0]} held-out windows")
            lm = LanguageModelRNN(len(data["idx_to_word"]), wordvec_dim=15, hidden_dim=100, cell_type="lstm",
                                  idx_to_word=data["idx_to_word"], seed=0)
            lm_solver = LanguageModelSolver(lm, data, update_rule="adam", optim_config={"learning_rate": 5e-4},
                                            batch_size=30, num_epochs=2 if SMALL else 20, seed=0, print_every=1000)
            lm_solver.train()

            history = lm_solver.val_history
            epochs = [h["epoch"] for h in history]
            fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4))
            ax_loss.plot(np.arange(1, len(lm_solver.loss_history) + 1), lm_solver.loss_history, lw=0.8,
                         label="training minibatches")
            ax_loss.plot([h["iteration"] for h in history], [h["val_loss"] for h in history], "o-",
                         label="held out")
            ax_loss.set(xlabel="iteration", ylabel="loss per token (nats)")
            ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="training text")
            ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="held out")
            ax_acc.set(xlabel="epoch", ylabel="next-word accuracy")
            for ax in (ax_loss, ax_acc):
                ax.legend()
                ax.grid(alpha=0.3)
            plt.show()
            if not SMALL:
                assert history[-1]["train_accuracy"] > 0.8, "training accuracy stayed below 80%"
        """),
        md("""
        ## Sampling

        Starting from a word, the model draws each next word from `softmax(scores / temperature)` and
        feeds it back in. Temperature 0 always takes the likeliest word (greedy decoding, which soon
        loops); 1 samples from the model's own distribution; higher temperatures flatten it towards
        uniform and the text falls apart.
        """),
        code("""
        if text is None:
            print("Skipped: no trained model (no text).")
        else:
            start = "alice" if "alice" in lm.word_to_idx else lm.idx_to_word[1]
            for temperature in (0.0, 0.5, 1.0, 1.5):
                words = lm.sample(lm.word_to_idx[start], 30, temperature=temperature, rng=0)
                print(f"temperature {temperature}:")
                print("   ", join_tokens([start] + decode(words, lm.idx_to_word), "classic"), "\\n")
        """),
    ]


# ----------------------------------------------------------------------------------------------------
# Writing and running
# ----------------------------------------------------------------------------------------------------

NOTEBOOKS = {
    "RNN_Captioning": rnn_captioning_cells,
    "LSTM_Captioning": lstm_captioning_cells,
    "Language_Model": language_model_cells,
}


def build_notebook(name):
    """The notebook `name` (a key of NOTEBOOKS) as an nbformat NotebookNode without outputs."""
    import nbformat

    cells = []
    for k, (kind, source) in enumerate(NOTEBOOKS[name]()):
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        cell.id = "%s-%02d" % (name.lower().replace("_", "-"), k)  # stable ids keep diffs small
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute_notebook(nb, timeout=CELL_TIMEOUT):
    """Run `nb` in place in a fresh kernel of this interpreter, with the notebooks directory as cwd."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    # No kernel directories: the 'python3' kernel is then ipykernel's own, run by sys.executable,
    # whatever other 'python3' kernelspecs the machine has.
    km = AsyncKernelManager(kernel_name=KERNELSPEC["name"], kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    client = NotebookClient(nb, km=km, timeout=timeout, record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="notebooks to write (default: all): " + ", ".join(NOTEBOOKS))
    parser.add_argument("--no-execute", action="store_true", help="write the notebooks without running them")
    parser.add_argument("--small", action="store_true", help="run with CS231N_NOTEBOOK_SMALL=1")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in NOTEBOOKS]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; choose from {list(NOTEBOOKS)}")
    import nbformat

    if args.small:
        os.environ["CS231N_NOTEBOOK_SMALL"] = "1"
    for name in args.names or list(NOTEBOOKS):
        nb = build_notebook(name)
        if not args.no_execute:
            start = time.time()
            execute_notebook(nb)
            print(f"{name}: ran in {time.time() - start:.0f} s")
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
        print(f"{name}: wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
