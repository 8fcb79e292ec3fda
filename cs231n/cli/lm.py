"""``lm-train`` and ``lm-sample``: the word-level language model."""
from cs231n.cli.limits import DIVERGENCE_FACTOR, check_fits, language_model_train_bytes
from cs231n.cli.options import (add_command, add_device_option, add_run_dir_options, claim_run_dir, existing_file,
                                learning_rate, nonnegative_float, nonnegative_int, positive_int)


def _add_lm(sub):
    p = add_command(sub, "lm-train", "train a word-level language model on a text file",
                    "Train a word-level language model on a UTF-8 text file and write lm_checkpoint.npz "
                    "(the training state; lm-sample reads it) and lm_history.json (per-epoch metrics) to a "
                    "run directory.")
    p.add_argument("--text", required=True, type=existing_file,
                   help="a UTF-8 text file (e.g. ../shared/data/alice.txt)")
    p.add_argument("--cell-type", choices=["rnn", "lstm", "gru"], default="lstm", help="recurrent cell")
    p.add_argument("--wordvec-dim", type=positive_int, default=15, help="word-vector size")
    p.add_argument("--hidden-dim", type=positive_int, default=100, help="hidden-state size")
    p.add_argument("--seq-len", type=positive_int, default=50, help="words per training window")
    p.add_argument("--batch-size", type=positive_int, default=30, help="windows per update")
    p.add_argument("--epochs", type=positive_int, default=50, help="passes over the training windows")
    p.add_argument("--lr", type=learning_rate, default=5e-4, help="Adam learning rate")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the weights and the minibatches")
    p.add_argument("--tokenizer", choices=["classic", "words"], default="classic",
                   help="classic: lower-case, split on spaces; words: words and punctuation")
    p.add_argument("--checkpoint-every", type=positive_int, default=1000,
                   help="also write the checkpoint every this many iterations (besides every epoch end)")
    add_run_dir_options(p, "runs/lm", "language-model run", resume_file=LM_CHECKPOINT)
    p.add_argument("--quiet", action="store_true", help="no per-epoch output")
    add_device_option(p)
    p.set_defaults(func=cmd_lm_train)

    p = add_command(sub, "lm-sample", "generate text from a language-model checkpoint")
    p.add_argument("--checkpoint", required=True, type=existing_file, help="lm_checkpoint.npz from lm-train")
    p.add_argument("--start", required=True, help="the first word")
    p.add_argument("--length", type=positive_int, default=40, help="words generated after --start")
    p.add_argument("--temperature", type=nonnegative_float, default=1.0,
                   help="0 = always the most likely word; higher = more varied")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the sampling")
    p.add_argument("--best", action="store_true",
                   help="use the weights of the epoch with the best accuracy instead of the last ones")
    add_device_option(p)
    p.set_defaults(func=cmd_lm_sample)


LM_CHECKPOINT = "lm_checkpoint.npz"


LM_OUTPUTS = (LM_CHECKPOINT, "lm_history.json")


def cmd_lm_train(a):
    from cs231n._alloc import keep_freed_memory
    from cs231n.lm_solver import train_language_model

    keep_freed_memory()  # this command owns its process: freed blocks stay mapped (cs231n/_alloc.py)

    claim_run_dir(a, LM_OUTPUTS, "language-model run", create=False)  # checks only: nothing written yet
    check_fits(language_model_train_bytes(a.cell_type, a.wordvec_dim, a.hidden_dim, a.batch_size, a.seq_len),
               "this language-model run")
    out = claim_run_dir(a, LM_OUTPUTS, "language-model run")
    _, history = train_language_model(
        a.text, cell_type=a.cell_type, wordvec_dim=a.wordvec_dim, hidden_dim=a.hidden_dim,
        seq_len=a.seq_len, batch_size=a.batch_size, num_epochs=a.epochs, learning_rate=a.lr, seed=a.seed,
        out_dir=str(out), tokenizer=a.tokenizer, verbose=not a.quiet, resume=a.resume,
        checkpoint_every=a.checkpoint_every, device=a.device, divergence_factor=DIVERGENCE_FACTOR)
    written = [name for name in LM_OUTPUTS if (out / name).is_file()]
    print(f"wrote {out}/: {', '.join(written)} ({len(history)} epochs); sample with: python -m cs231n "
          f"lm-sample --checkpoint {out / LM_CHECKPOINT} --start WORD")
    return 0


def cmd_lm_sample(a):
    from cs231n.lm_solver import sample_text

    print(sample_text(a.checkpoint, a.start, length=a.length, temperature=a.temperature, seed=a.seed,
                      best=a.best, device=a.device))
    return 0
