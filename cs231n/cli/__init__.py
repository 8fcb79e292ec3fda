"""The command line: ``python -m cs231n <command>`` (also installed as the ``cs231n`` script).

Shared rules, with the helpers every command uses (see the README's "Rules of the command line"):

- options are checked when they are parsed, before any data is loaded (argparse ``type=`` functions
  :func:`positive_int`, :func:`nonnegative_int`, :func:`learning_rate`, :func:`existing_file`, ...);
  a bad one ends with argparse's usage line and exit status 2;
- a run directory is claimed with :func:`claim_run_dir` (options from :func:`add_run_dir_options`):
  never overwritten without ``--overwrite``, a fresh ``runs/<command>-N`` without ``--out``;
- an expected failure (a bad file, a mismatched dataset, a diverged run) prints one ``error:`` line on
  stderr and exits 1 (:func:`main`); Ctrl-C exits 130 after saying how to resume;
- subcommands are made with :func:`add_command`, which shows every option's default in ``--help``;
- commands that compute take ``--device cpu|gpu`` (:func:`add_device_option`): with ``gpu``, CuPy and a
  CUDA device are checked before any work (:func:`main`), and their absence is one ``error:`` line,
  exit 1.

Commands:
  train          train a captioning model (default: LSTM on the synthetic shapes dataset, made on first use)
  evaluate       multi-reference BLEU-1..4 and CIDEr of a saved model on a split (greedy or beam search)
  caption        caption image files with a model trained on the shapes dataset
  download       fetch the real cs231n COCO captioning release (needs the internet)
  build-dataset  write the COCO on-disk format from COCO-style caption JSON and your own CNN features
  lm-train       train a word-level language model on a text file
  lm-sample      generate text from a language-model checkpoint
  classify-train train a sentence classifier (Transformer, LSTM, bag of words) on CoLA-format data
  sweep          search hyperparameters with Ray Tune (the optional extra: pip install -e '.[sweep]')

This package only parses arguments and wires the library's pieces together, one module a command
group: ``options`` (shared option types and run directories), ``models`` (loading captioning models and
their data), ``train``, ``inference`` (evaluate, caption), ``data`` (download, build-dataset), ``lm``,
``classify``, ``sweep``, and ``main`` (the parser and the exit statuses). The work is done by
cs231n.coco_utils, cs231n.data, cs231n.classifiers, cs231n.captioning_solver, cs231n.metrics and
cs231n.vis.
"""
from cs231n.cli.main import EXPECTED_ERRORS, build_parser, main
from cs231n.cli.options import (add_command, add_device_option, add_run_dir_options, claim_run_dir, existing_dir,
                                existing_file, learning_rate, nonnegative_float, nonnegative_int, positive_float,
                                positive_int)

__all__ = ["EXPECTED_ERRORS", "add_command", "add_device_option", "add_run_dir_options", "build_parser",
           "claim_run_dir", "existing_dir", "existing_file", "learning_rate", "main", "nonnegative_float",
           "nonnegative_int", "positive_float", "positive_int"]
