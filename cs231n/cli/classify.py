"""``classify-train``: train a sentence classifier on CoLA data (TSV files or the preprocessed arrays)."""
import argparse
import json

from cs231n.cli.limits import DIVERGENCE_FACTOR
from cs231n.cli.options import (OptionError, _number, add_command, add_device_option, add_run_dir_options, claim_run_dir,
                                existing_dir, learning_rate, nonnegative_int, positive_float, positive_int)


def holdout_fraction(text):
    """argparse type: a share in [0, 1) (0: no holdout, the classic behaviour)."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text}")
    return value


def _add_classify(sub):
    p = add_command(sub, "classify-train", "train a sentence classifier on CoLA data",
                    "Train a sentence-acceptability classifier on a folder of CoLA/GLUE TSV files (train.tsv and "
                    "dev files, 'sentence<TAB>label' or GLUE's 4 raw columns, with or without a header) or on the "
                    "course's preprocessed folder (word_to_ix.csv, train/val _inxs.npy and _labels.npy). Every "
                    "choice (epoch, learning rate, regularisation, threshold) is made on a held-out slice of train "
                    "(--holdout); the dev/val sets are scored once, with bootstrap 95%% intervals of MCC and "
                    "accuracy. Writes model.npz, checkpoint.npz, history.json, curves.png and scores.json to a "
                    "run directory.")
    p.add_argument("--data", required=True, type=existing_dir,
                   help="a TSV folder (e.g. ../shared/data/cola_public) or the preprocessed folder "
                        "(../shared/data/cola)")
    p.add_argument("--model", choices=["transformer", "lstm", "bow", "ngram"], default="transformer",
                   help="which classifier (the Transformer's defaults: H 64, F 256, 2 heads of 32, padding "
                        "mask, mean readout, dropout 0.2; --option changes them; ngram: class-balanced "
                        "logistic regression on word 1-3-grams, its regularisation chosen on the holdout)")
    p.add_argument("--eval", metavar="FILE[,FILE]",
                   help="the TSV file(s) to report, names in --data or paths (default: every *.tsv of the folder "
                        "but train.tsv and test*.tsv, e.g. both CoLA dev sets)")
    p.add_argument("--holdout", type=holdout_fraction, default=0.1,
                   help="share of train held out (seeded by --seed) on which the epoch and every other choice "
                        "is made; 0: the classic behaviour (preprocessed folders only): the epoch of best val "
                        "MCC, scored on that same val")
    p.add_argument("--refit", action="store_true",
                   help="after choosing on the holdout, retrain on all of train for the chosen number of epochs")
    p.add_argument("--min-count", type=positive_int, default=2,
                   help="TSV folders: vocabulary words must occur this often in train.tsv (rarer ones are UNK)")
    p.add_argument("--word-dropout", type=holdout_fraction, default=0.0, metavar="P",
                   help="replace each word of a training minibatch by UNK with probability P (with --holdout)")
    p.add_argument("--ngram-features", type=nonnegative_int, default=0, metavar="N",
                   help="Transformer only: add a sparse linear term on the sentence's word 1..N-grams (those of "
                        "the training rows) to the Transformer's logit, trained jointly with it (--option "
                        "ngram_scale=30 and ngram_reg=1e-4, the defaults, set its step scale and L2 strength); "
                        "0: none")
    p.add_argument("--tune-threshold", action="store_true",
                   help="also choose the decision threshold on the holdout (default: probability 0.5)")
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
                   help="also score the majority class and train the bag-of-words, n-gram (with --holdout) and "
                        "LSTM baselines, and print one table of accuracy and MCC")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model constructor option, e.g. readout=mean or dropout=0.2 (repeatable; values are "
                        "read as JSON when they parse, else as text)")
    add_run_dir_options(p, "runs/classify", "classification run", resume_file="checkpoint.npz")
    p.add_argument("--quiet", action="store_true", help="no per-iteration output")
    add_device_option(p)
    p.set_defaults(func=cmd_classify_train)


def _model_options(pairs, kind, holdout=False):
    """``--option KEY=VALUE`` pairs as constructor options of ``kind`` (with ``holdout``, also the training
    options a holdout candidate may set, e.g. pretrain_epochs); a bad one is an OptionError."""
    from cs231n.cola_models import model_options
    from cs231n.cola_selection import SOLVER_OPTIONS

    valid = model_options(kind) + (list(SOLVER_OPTIONS) if holdout and kind != "ngram" else [])
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"--option must be KEY=VALUE, got {pair!r}; the {kind} classifier's keys are "
                              f"{', '.join(valid)}")
        if key not in valid:
            raise OptionError(f"--option {pair}: the {kind} classifier has no option {key!r}; its options are "
                              f"{', '.join(valid)}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def cmd_classify_train(a):
    from cs231n._alloc import keep_freed_memory
    from cs231n.cola_training import OUTPUTS, train_sentence_classifier

    keep_freed_memory()  # this command owns its process: freed blocks stay mapped (cs231n/_alloc.py)

    options = _model_options(a.option, a.model, bool(a.holdout))
    eval_files = [f for f in a.eval.split(",") if f] if a.eval else None
    if not a.holdout and (a.refit or eval_files or a.tune_threshold or a.word_dropout or a.model == "ngram"):
        raise OptionError("--refit, --eval, --tune-threshold, --word-dropout and --model ngram go with the "
                          "holdout; give --holdout > 0")
    if a.word_dropout:
        options["word_dropout"] = a.word_dropout
    if a.ngram_features:
        if a.model != "transformer":
            raise OptionError(f"--ngram-features adds n-gram inputs to the Transformer, not to --model {a.model}")
        options["ngram_n"] = a.ngram_features
    out = claim_run_dir(a, OUTPUTS, "classification run")
    extra = {}
    if a.holdout:
        extra = dict(holdout=a.holdout, refit=a.refit, eval_files=eval_files, min_count=a.min_count,
                     tune_threshold=a.tune_threshold)
    train_sentence_classifier(a.data, out, kind=a.model, lr=a.lr, epochs=a.epochs, batch_size=a.batch_size,
                              lr_decay=a.lr_decay, seed=a.seed,
                              class_weight=None if a.class_weight == "none" else a.class_weight,
                              grad_clip=a.grad_clip, max_train=a.max_train, baselines=a.baselines,
                              resume=a.resume, overwrite=True, verbose=not a.quiet, model_options=options,
                              device=a.device, divergence_factor=DIVERGENCE_FACTOR, **extra)
    return 0
