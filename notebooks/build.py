"""Build the walk-through notebooks (``NAME.ipynb``) from their sources (``NAME.py``) and run them.

Each notebook's source is the jupytext percent-format file beside it (``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell); the ``.ipynb`` is paired with it (same cell sources) and carries
the outputs of a real run, so its plots and printed checks are visible on GitHub.

    python notebooks/build.py                        # build every notebook and run it for real (minutes)
    python notebooks/build.py --only RNN_Captioning  # only this one (repeat --only for more)
    python notebooks/build.py --small                # run in small mode (a quick look; don't commit that)
    python notebooks/build.py --no-execute           # write the cells without outputs

Edit a notebook either in its ``.py`` (any editor) or in Jupyter with the jupytext extension, which
keeps the pair in step; then rebuild it here before committing. ``tests/test_notebooks.py`` runs every
notebook listed in NOTEBOOKS in small mode (``CS231N_NOTEBOOK_SMALL=1``) and checks that each
committed ``.ipynb`` has its ``.py``'s cells. Adding a notebook: write ``notebooks/NAME.py`` and add
one line to NOTEBOOKS.
"""
import argparse
import os
import sys
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
PAIRING = "ipynb,py:percent"  # jupytext's "formats": the .ipynb and the percent-format .py beside it
CELL_TIMEOUT = 1800  # seconds per cell when run from here (a full run's training cell takes minutes)

# Every notebook, with the least number of "relative error" lines it prints (tests/test_notebooks.py
# fails a notebook that prints fewer, so one that silently stops checking is caught).
NOTEBOOKS = {
    "RNN_Captioning": 27,
    "LSTM_Captioning": 38,
    "Language_Model": 22,
    "Transformer_Classification": 61,
    "Transformer_Captioning": 27,
    "Attention_Captioning": 50,
}


def source_path(name):
    """The jupytext source ``notebooks/<name>.py`` of the notebook `name`."""
    return NOTEBOOK_DIR / f"{name}.py"


def build_notebook(name):
    """The notebook `name` (a key of NOTEBOOKS), read from its .py, as an nbformat NotebookNode without outputs."""
    import jupytext

    if name not in NOTEBOOKS:
        raise ValueError(f"name: expected one of {list(NOTEBOOKS)}, got {name!r}")
    nb = jupytext.read(source_path(name), fmt="py:percent")
    for k, cell in enumerate(nb.cells):
        cell.id = "%s-%02d" % (name.lower().replace("_", "-"), k)  # stable ids keep diffs small
    nb.metadata = {
        "jupytext": {"formats": PAIRING},
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
    }
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
    parser.add_argument("--only", action="append", metavar="NAME", choices=list(NOTEBOOKS),
                        help="build only this notebook (repeatable; default: all): " + ", ".join(NOTEBOOKS))
    parser.add_argument("--no-execute", action="store_true", help="write the notebooks without running them")
    parser.add_argument("--small", action="store_true", help="run with CS231N_NOTEBOOK_SMALL=1")
    args = parser.parse_args(argv)
    import nbformat

    if args.small:
        os.environ["CS231N_NOTEBOOK_SMALL"] = "1"
    for name in args.only or list(NOTEBOOKS):
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
