"""Run directories and data identity: what is checked before a command writes or scores anything.

Two rules of the command line live here so that every command follows them the same way:

- **A run directory is never overwritten.** :func:`prepare_run_dir` refuses a new run in a directory
  that already holds files (it offers ``--resume``, a new ``--out`` or ``--overwrite``), and without
  ``--out`` :func:`fresh_run_dir` picks the first free name among ``runs/train``, ``runs/train-2``,
  ``runs/train-3``, ... Temporary files that killed writers left behind are removed on the next run.
- **A model is only used with the data it was trained on.** :func:`dataset_identity` fingerprints the
  files whose contents a model depends on (the feature files, and the featurizer that makes features
  for new images); a model file records it, and :func:`identity_problems` compares the record with a
  dataset before any score is computed.

Errors are ``ValueError``/``FileExistsError``/``FileNotFoundError`` whose message names the path and
the option, so the command line prints them as one ``error:`` line.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

from cs231n.archive import remove_stale_temp_files

_SAMPLE_BYTES = 1 << 16  # bytes read at each sampled offset of a large file
_SAMPLES = 32  # offsets sampled in a file larger than _SAMPLES * _SAMPLE_BYTES


# ----------------------------------------------------------------------------------------------------
# Run directories


def _is_empty_dir(path):
    return path.is_dir() and not any(path.iterdir())


def fresh_run_dir(default):
    """The first of ``default``, ``default-2``, ``default-3``, ... that is absent or an empty directory.

    Inputs:
    - default: str or os.PathLike, e.g. ``runs/train``.

    Returns a ``pathlib.Path`` (not created).
    """
    base = Path(default)
    candidate, k = base, 1
    while candidate.exists() and not _is_empty_dir(candidate):
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


def prepare_run_dir(out, default, *, resume=False, overwrite=False, outputs=(), resume_file=None,
                    what="run", create=True):
    """Check and create the directory of a run, before any data is loaded or any work starts.

    Inputs:
    - out: the ``--out`` the user gave (str or os.PathLike), or None for a fresh directory next to
      ``default`` (see :func:`fresh_run_dir`).
    - default: the default run directory, e.g. ``runs/train``.
    - resume: continue the run in ``out``; ``out/resume_file`` must exist.
    - overwrite: start a new run in ``out`` even though it holds files; the files named in
      ``outputs`` that are there are deleted first, so no stale file of the old run stays beside
      the new ones (other files are left alone).
    - outputs: names of the files this command writes into its run directory.
    - resume_file: the checkpoint's name inside the run directory (needed with ``resume``).
    - what: the kind of run, for messages (e.g. 'training run').
    - create: False to check only, before other checks that must also pass before anything is
      written: nothing is created, deleted or cleaned up, and a missing ``out`` gives None.

    Returns the run directory as a ``pathlib.Path`` (created; stale temporary files removed).

    Raises ValueError for contradictory options or an ``out`` that is a file, FileNotFoundError when
    there is nothing to resume, and FileExistsError when ``out`` holds files and neither ``resume``
    nor ``overwrite`` was given.
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: --resume continues the run in "
                         "--out, --overwrite replaces it")
    if out is None:
        if resume:
            raise ValueError(f"--resume needs --out, the directory of the {what} to continue "
                             f"(e.g. --out {default})")
        return _claim_fresh(default) if create else None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; --out names a directory for the {what}'s "
                         f"files (choose another path)")
    if out.is_dir() and create:
        remove_stale_temp_files(out)
    if resume:
        if resume_file is None:
            raise ValueError(f"prepare_run_dir: resume=True needs resume_file")
        if not (out / resume_file).is_file():
            raise FileNotFoundError(f"nothing to resume in {out}: it has no {resume_file} (a {what} writes "
                                    f"one every few minutes); start a new run without --resume")
        return out
    existing = sorted(p.name for p in out.iterdir() if not p.name.startswith(".tmp-")) if out.is_dir() else []
    if existing and not overwrite:
        shown = ", ".join(existing[:6]) + (", ..." if len(existing) > 6 else "")
        hint = ("continue that run with --resume, " if resume_file in existing else "")
        raise FileExistsError(f"--out {out} already holds files ({shown}); nothing was changed. Either "
                              f"{hint}choose another --out (or leave --out out for a fresh directory), or "
                              f"add --overwrite to replace this {what}")
    if not create:
        return out
    if overwrite:
        for name in outputs:
            path = out / name
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
    _make_dir(out, "--out", what)
    return out


def _make_dir(path, option, what):
    """``path.mkdir(parents=True, exist_ok=True)``; an OSError names the option and what to do."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"{option} {path} cannot be created ({e.strerror or e}); choose a directory you can "
                      f"write to for the {what}'s files, e.g. one under your home or working directory") from e


def _claim_fresh(default):
    """Create and return the first free ``default[-k]``; ``mkdir`` itself decides between racing runs."""
    while True:
        candidate = fresh_run_dir(default)
        if candidate.is_dir():  # empty: nothing to lose
            return candidate
        _make_dir(candidate.parent, "the default run directory", "run")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue  # another run took it a moment ago: look again
        return candidate


def resume_command(argv, out, prog="python -m cs231n"):
    """The command line that continues an interrupted run: ``argv`` with ``--resume --out <out>``.

    ``--overwrite`` is dropped and an existing ``--out`` replaced, so the run continues where it is.

    Inputs:
    - argv: the arguments the run was started with (without the program name).
    - out: its run directory.

    Returns a str that can be pasted into a shell.
    """
    import shlex

    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--overwrite", "--resume"):
            continue
        if arg == "--out":
            skip = True
            continue
        if arg.startswith("--out="):
            continue
        args.append(arg)
    return " ".join([prog] + [shlex.quote(a) for a in args] + ["--resume", "--out", shlex.quote(str(out))])


# ----------------------------------------------------------------------------------------------------
# Data identity


def file_fingerprint(path):
    """A content fingerprint of a file, cheap even for files of gigabytes.

    The BLAKE2b hash of the file's size and of its bytes: all of them for a file up to 2 MiB, else
    32 blocks of 64 KiB at evenly spaced offsets (first and last block included). Two files with the
    same fingerprint are, for any practical purpose, the same file (a regenerated or different
    dataset changes bytes everywhere).

    Inputs:
    - path: str or os.PathLike of a regular file.

    Returns a str ``'blake2b:<32 hex digits>'``.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        if size <= _SAMPLES * _SAMPLE_BYTES:
            h.update(f.read())
        else:
            last = size - _SAMPLE_BYTES
            for k in range(_SAMPLES):
                f.seek(last * k // (_SAMPLES - 1))
                h.update(f.read(_SAMPLE_BYTES))
    return "blake2b:" + h.hexdigest()


def vocabulary_fingerprint(word_to_idx):
    """A fingerprint of a vocabulary (dict word -> index), independent of the dict's order."""
    text = json.dumps({str(w): int(i) for w, i in word_to_idx.items()}, sort_keys=True, ensure_ascii=False)
    return "blake2b:" + hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def dataset_identity(base_dir, word_to_idx, feature_files, featurizer_files=()):
    """What a model trained on a dataset depends on, to be stored in the model file.

    Inputs:
    - base_dir: the dataset directory.
    - word_to_idx: its vocabulary.
    - feature_files: names (inside ``base_dir``) of the feature files the model was trained on.
    - featurizer_files: names of files that turn new images into such features (skipped when absent,
      e.g. for real COCO, whose features come from VGG-16).

    Returns a JSON-ready dict with 'dataset' (the directory, for messages), 'vocabulary' (see
    :func:`vocabulary_fingerprint`), 'features' and 'featurizer' (name -> :func:`file_fingerprint`).
    """
    base = Path(base_dir).absolute()  # so that commands run from elsewhere find it again
    return {
        "dataset": str(base),
        "vocabulary": vocabulary_fingerprint(word_to_idx),
        "features": {name: file_fingerprint(base / name) for name in feature_files},
        "featurizer": {name: file_fingerprint(base / name) for name in featurizer_files
                       if (base / name).is_file()},
    }


def captioning_data_identity(base_dir, word_to_idx, regions=False):
    """:func:`dataset_identity` of a captioning dataset in the COCO format, as training records it.

    The feature files are the PCA features of both splits (what ``load_coco_data`` reads by default),
    or with ``regions`` the region features (``*_regions.h5``); the featurizer is the shapes dataset's,
    when the directory has one.
    """
    from cs231n.coco_utils import SPLITS, features_file, regions_file
    from cs231n.data import shapes

    files = [regions_file(s) if regions else features_file(s, True) for s in SPLITS]
    return dataset_identity(base_dir, word_to_idx, files, (shapes.FEATURIZER_FILE,))


def identity_problems(recorded, current, parts=("vocabulary", "features")):
    """How a dataset differs from the one a model was trained on; an empty list when it does not.

    Inputs:
    - recorded: the dict :func:`dataset_identity` gave at training time (from the model file).
    - current: the same dict for the dataset at hand.
    - parts: which entries to compare ('vocabulary', 'features', 'featurizer').

    Returns a list of str, one per difference, each naming the file or the vocabulary.
    """
    problems = []
    for part in parts:
        mine, theirs = recorded.get(part), current.get(part)
        if part == "vocabulary":
            if mine is not None and mine != theirs:
                problems.append("the vocabulary differs")
            continue
        mine, theirs = mine or {}, theirs or {}
        for name in sorted(set(mine) | set(theirs)):
            if name not in theirs:
                problems.append(f"{name} is missing")
            elif name not in mine:
                problems.append(f"{name} was not part of the training data")
            elif mine[name] != theirs[name]:
                problems.append(f"{name} has other contents")
    return problems
