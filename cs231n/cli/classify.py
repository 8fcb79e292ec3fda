"""``classify-train``: train a sentence classifier on CoLA-format data."""
import json

from cs231n.cli.options import (add_command, add_device_option, add_run_dir_options, claim_run_dir, existing_dir,
                                learning_rate, nonnegative_int, positive_float, positive_int)


def _add_classify(sub):
    p = add_command(sub, "classify-train", "train a sentence classifier on CoLA-format data",
                    "Train a sentence-acceptability classifier on a folder in the CoLA format (word_to_ix.csv, "
                    "train/val _inxs.npy and _labels.npy) and write model.npz, checkpoint.npz, history.json, "
                    "curves.png and scores.json (val accuracy and Matthews correlation) to a run directory.")
    p.add_argument("--data", required=True, type=existing_dir,
                   help="the CoLA-format folder, e.g. ../shared/data/cola")
    p.add_argument("--model", choices=["transformer", "lstm", "bow"], default="transformer",
                   help="which classifier (the Transformer's defaults: H 64, F 256, 2 heads of 32, padding "
                        "mask, mean readout, dropout 0.2; --option changes them)")
    p.add_argument("--epochs", type=positive_int, help="passes over the training sentences (default: per model)")
    p.add_argument("--lr", type=learning_rate, help="Adam learning rate (default: per model)")
    p.add_argument("--lr-decay", type=positive_float, help="learning-rate factor per epoch (default: per model)")
    p.add_argument("--batch-size", type=positive_int, help="sentences per update (default: per model)")
    p.add_argument("--grad-clip", type=positive_float, help="global gradient-norm limit (default: off)")
    p.add_argument("--class-weight", choices=["balanced", "none"], default="balanced",
                   help="balanced: weigh both classes equally in the loss (71%% of CoLA is acceptable; "
                        "unweighted models answer 'acceptable' almost always); none: every sentence weighs 1")
    p.add_argument("--max-train", type=positive_int, help="train on this many sentences only (a seeded subset)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the weights and the minibatch order")
    p.add_argument("--baselines", action="store_true",
                   help="also score the majority class and train the bag-of-words and LSTM baselines, "
                        "and print one table of val accuracy and MCC")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model constructor option, e.g. readout=mean or dropout=0.2 (repeatable; values are "
                        "read as JSON when they parse, else as text)")
    add_run_dir_options(p, "runs/classify", "classification run", resume_file="checkpoint.npz")
    p.add_argument("--quiet", action="store_true", help="no per-iteration output")
    add_device_option(p)
    p.set_defaults(func=cmd_classify_train)


def _model_options(pairs):
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option must be KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def cmd_classify_train(a):
    from cs231n.classification_solver import OUTPUTS, train_sentence_classifier

    options = _model_options(a.option)
    out = claim_run_dir(a, OUTPUTS, "classification run")
    train_sentence_classifier(a.data, out, kind=a.model, lr=a.lr, epochs=a.epochs, batch_size=a.batch_size,
                              lr_decay=a.lr_decay, seed=a.seed,
                              class_weight=None if a.class_weight == "none" else a.class_weight,
                              grad_clip=a.grad_clip, max_train=a.max_train, baselines=a.baselines,
                              resume=a.resume, overwrite=True, verbose=not a.quiet, model_options=options,
                              device=a.device)
    return 0
