"""The parser of ``python -m cs231n`` built from every command group, and :func:`main`: one ``error:`` line
and exit 1 for an expected failure, 130 after Ctrl-C with the command that continues the run."""
import argparse
import os
import sys
import warnings
import zipfile
from pathlib import Path

from cs231n.cli.classify import _add_classify
from cs231n.cli.data import _add_build, _add_download
from cs231n.cli.inference import _add_caption, _add_evaluate
from cs231n.cli.lm import _add_lm
from cs231n.cli.options import OptionError, _Parser, given_options
from cs231n.cli.sweep import _add_sweep
from cs231n.cli.train import _add_train


DESCRIPTION = ("Train and use image-captioning models (RNN, LSTM, GRU, Transformer) on a built-in synthetic "
               "dataset or on the real COCO captions, score them with BLEU and CIDEr, caption your own images, "
               "train word-level language models on a text file and sentence classifiers on CoLA, and search "
               "hyperparameters with Ray Tune.")


EPILOG = ("Exit status: 0 success, 1 an error (one 'error:' line on stderr says what to do), 2 a bad option "
          "or combination of options, "
          "130 interrupted with Ctrl-C (a checkpoint is kept; the message says how to resume). "
          "Run 'python -m cs231n COMMAND --help' for a command's options.")


def build_parser():
    parser = _Parser(prog="python -m cs231n", description=DESCRIPTION, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_caption(sub)
    _add_download(sub)
    _add_build(sub)
    _add_lm(sub)
    _add_classify(sub)
    _add_sweep(sub)
    return parser


# Failures a user can cause and fix (bad files, mismatched data, divergence): one `error:` line, exit 1.
EXPECTED_ERRORS = (ValueError, TypeError, OSError, RuntimeError, ArithmeticError, EOFError,
                   zipfile.BadZipFile)


def _interrupted(a, argv, exc):
    """Say what Ctrl-C left behind and how to continue; the exit status is 130 (128 + SIGINT)."""
    from cs231n.runs import resume_command

    lines = ["interrupted"]
    checkpoint = getattr(exc, "checkpoint", None)
    if checkpoint:
        lines[0] += (f" after iteration {exc.iteration}; every finished iteration is saved in "
                     f"{checkpoint}")
    resume_file = getattr(a, "run_resume_file", None)
    out = getattr(a, "out", None)
    if resume_file and out and (Path(out) / resume_file).is_file():
        lines.append(f"continue with: {resume_command(argv, out)}")
    print("\n".join(lines), file=sys.stderr)
    return 130


def _command_parser(parser, command):
    """The subparser of ``command``."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Python warnings as one ``warning:`` line on stderr: what the library says, not its source line."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=sys.stderr if file is None else file)


def main(argv=None):
    """Run one command; returns its exit status (0; 1 an expected failure; 2 a bad option; 130 Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else [str(x) for x in argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad option (2): returned, so callers in Python see it too
        return e.code
    args.given_options = given_options(_command_parser(parser, args.command), argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if getattr(args, "device", "cpu") == "gpu":
                from cs231n.backend import import_cupy
                import_cupy()  # BackendError (a RuntimeError) says what is missing, before any work
            return args.func(args)
    except KeyboardInterrupt as e:
        return _interrupted(args, argv, e)
    except OptionError as e:  # a bad combination of options, found before any work: like argparse's errors
        if os.environ.get("CS231N_DEBUG"):
            raise
        print(f"error: {e}\n(see: {parser.prog} {args.command} --help)", file=sys.stderr)
        return 2
    except MemoryError as e:  # what the size checks could not foresee (they estimate arrays only)
        if os.environ.get("CS231N_DEBUG"):
            raise
        print(f"error: out of memory: {e or 'an allocation failed'}; lower the sizes (--batch-size, "
              f"--hidden-dim, --max-train, ...) or free memory", file=sys.stderr)
        return 1
    except EXPECTED_ERRORS as e:
        if os.environ.get("CS231N_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
