"""Shared pieces of every command: the parser's error and help format, option types that check values
when they are parsed (before any data is loaded), ``--device``, and run directories (``--out``,
``--resume``, ``--overwrite``) that are never overwritten by accident."""
import argparse
import math
import os
import sys


class OptionError(ValueError):
    """A bad option, or a bad combination of options, found after parsing (e.g. ``--num-heads 3`` with
    ``--wordvec-dim 128``, or a ``--resume`` that changes the run): :func:`cs231n.cli.main` prints it as
    one ``error:`` line and exits 2, as argparse does for the options it checks itself. Raised before
    any data is loaded or anything written."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one ``error:`` line (plus where to find help), exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message}\n(see: {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; leaves out '(default: None)', the defaults of flags and the empty list
    of a repeatable option."""

    def _get_help_string(self, action):
        if (action.default is None or action.default is False or action.default == argparse.SUPPRESS
                or (isinstance(action.default, list) and not action.default)):
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name, help, description=None):
    """A subcommand parser whose ``--help`` shows every option's default; every option needs a help text."""
    return sub.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                          formatter_class=_HelpFormatter)


def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def nonnegative_int(text):
    """argparse type: an integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def nonnegative_float(text):
    """argparse type: a finite number >= 0."""
    value = _number(text, float)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


LR_WARN_ABOVE = 0.1  # learning rates above this rarely train anything with Adam or SGD here


def learning_rate(text):
    """argparse type: a finite learning rate > 0; above LR_WARN_ABOVE a warning goes to stderr."""
    value = positive_float(text)
    if value > LR_WARN_ABOVE:
        print(f"warning: learning rate {text} is far above the usual range (1e-4 to 1e-2); training will "
              f"probably diverge or learn nothing", file=sys.stderr)
    return value


def existing_file(text):
    """argparse type: the path of a readable regular file."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} cannot be read (permission denied)")
    return text


def existing_dir(text):
    """argparse type: the path of an existing directory."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text}" if not os.path.exists(text)
                                         else f"{text} is not a directory")
    return text


def given_options(parser, argv):
    """The ``dest`` of every option of ``parser`` written in ``argv`` (not left to its default).

    Matches the words of ``argv`` as argparse does: ``--name``, ``--name=value`` and unambiguous
    abbreviations (``--hidden`` for ``--hidden-dim``); nothing after ``--``. Used where a default must
    be told from the same value written out (``train --resume`` takes the run's own value of an option
    that is not given).
    """
    strings = {s: action.dest for action in parser._actions for s in action.option_strings}
    given = set()
    for word in argv:
        if word == "--":
            break
        if not word.startswith("-"):
            continue
        name = word.split("=", 1)[0]
        if name in strings:
            given.add(strings[name])
        elif name.startswith("--"):
            matches = {dest for s, dest in strings.items() if s.startswith(name)}
            if len(matches) == 1:
                given |= matches
    return given


def add_device_option(p):
    """``--device cpu|gpu``: where the model computes (checked by :func:`main` before the command runs)."""
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="where the model computes: cpu (numpy) or gpu (an NVIDIA GPU through CuPy, which "
                        "must be installed: pip install cupy-cuda12x, or the build for your CUDA)")


def add_run_dir_options(p, default, what="run", resume_file="checkpoint.npz"):
    """``--out``, ``--resume`` and ``--overwrite`` with the run-directory rule (see :func:`claim_run_dir`).

    ``resume_file`` is the checkpoint's name in the run directory (what ``--resume`` continues from).
    """
    p.add_argument("--out", help=f"directory for the {what}'s files (default: {default}, or the first free "
                                 f"{default}-2, {default}-3, ...); an existing non-empty one is refused")
    p.add_argument("--resume", action="store_true", help=f"continue the interrupted {what} in --out from "
                                                         f"its checkpoint")
    p.add_argument("--overwrite", action="store_true", help=f"start a new {what} in an --out that holds an "
                                                            f"old one, deleting the old one's files")
    p.set_defaults(run_dir_default=default, run_resume_file=resume_file)


def claim_run_dir(a, outputs, what="run", create=True):
    """The run directory of a command made with :func:`add_run_dir_options`, checked and created.

    Sets ``a.out`` to the directory chosen (so a fresh default is reported and recorded) and returns it
    as a Path. Raises FileExistsError/FileNotFoundError/ValueError with a message for the user, and
    OptionError for contradictory options. With ``create=False`` it only checks (nothing is created
    or deleted, ``a.out`` is left as it is) and returns the Path of ``--out``, or None without it.
    """
    from cs231n.runs import prepare_run_dir

    if a.resume and a.overwrite:
        raise OptionError("--resume and --overwrite contradict each other: --resume continues the run in "
                          "--out, --overwrite replaces it")
    if a.resume and a.out is None:
        raise OptionError(f"--resume needs --out, the directory of the {what} to continue "
                          f"(e.g. --out {a.run_dir_default})")
    out = prepare_run_dir(a.out, a.run_dir_default, resume=a.resume, overwrite=a.overwrite,
                          outputs=outputs, resume_file=a.run_resume_file, what=what, create=create)
    if create:
        a.out = str(out)
    return out
