"""The walk-through notebooks: each runs headless in a fresh kernel, and the committed files are sound.

``test_notebook_runs`` executes every notebook with nbclient in a fresh kernel of this interpreter, in
small mode (``CS231N_NOTEBOOK_SMALL=1``) on the tiny shapes dataset generated into a temporary
directory. It fails on any cell error (the notebooks ``assert`` every numerical check) and, as a second
line of defence, on any printed ``relative error`` above the loosest threshold the notebooks use. Its
runtime is printed (run with ``-s`` to see it) and recorded as the test property ``runtime_s``.
Three more runs cover the other paths: ``RNN_Captioning`` with ``CS231N_COCO_DIR`` set (a COCO-format
dataset whose image URLs all answer 404 from a local server), ``Language_Model`` without its text and
``Transformer_Classification`` without the CoLA data.

The other tests read the committed ``.ipynb`` files: their cells must be those of their jupytext
source ``notebooks/NAME.py`` (built by ``notebooks/build.py``), they must carry the outputs of a run
without errors (plots included), and they must stay small enough to review. Every ``notebooks/*.py``
source must be listed in ``build.NOTEBOOKS``, so a new notebook cannot escape these tests.
"""
import http.server
import importlib.util
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (pip install -e '.[test]')")
pytest.importorskip("nbclient", reason="the notebook tests need nbclient (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (pip install -e '.[test]')")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 600           # seconds for one cell in small mode; far above what any cell needs
LOOSEST_TOL = 1e-5           # the largest threshold of any numerical check in the notebooks
MAX_NOTEBOOK_BYTES = 1_500_000

_REL_ERROR = re.compile(r"relative error:?\s+([0-9.]+(?:e[+-]?[0-9]+)?)", re.IGNORECASE)


def _load_builder():
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOK_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# name -> the least number of relative errors the notebook prints (a notebook that stops checking fails)
MIN_CHECKS = _load_builder().NOTEBOOKS
NOTEBOOKS = tuple(MIN_CHECKS)


def _stream_text(nb):
    """All stdout/stderr text of a notebook's outputs, one string."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
    return "".join(parts)


def _relative_errors(nb):
    return [float(m) for m in _REL_ERROR.findall(_stream_text(nb))]


@pytest.fixture(scope="module")
def builder():
    pytest.importorskip("jupytext", reason="the notebook sources need jupytext (pip install -e '.[test]')")
    return _load_builder()


@pytest.fixture(scope="module")
def small_mode_dirs(tmp_path_factory):
    """Temporary directories shared by the notebooks of one test session (the tiny dataset is made once)."""
    base = tmp_path_factory.mktemp("notebooks")
    return {"shapes": base / "shapes", "images": base / "image_cache"}


def _run_small(name, builder, dirs, monkeypatch, **env):
    """Execute the notebook `name`, built from its .py source, in small mode in a fresh kernel; return it run."""
    nb = builder.build_notebook(name)  # no outputs: a clean slate (its cells equal the committed .ipynb's)

    # The kernel inherits this environment.
    monkeypatch.setenv("CS231N_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("CS231N_SHAPES_SIZE", "tiny")
    monkeypatch.setenv("CS231N_SHAPES_DIR", str(dirs["shapes"]))
    monkeypatch.setenv("CS231N_IMAGE_CACHE", str(dirs["images"]))
    monkeypatch.delenv("CS231N_COCO_DIR", raising=False)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        # One BLAS thread: small matrices gain nothing from more, and on a busy two-core machine
        # oversubscribed threads make the run several times slower.
        monkeypatch.setenv(var, "1")
    for var, value in env.items():
        monkeypatch.setenv(var, value)

    start = time.perf_counter()
    builder.execute_notebook(nb, timeout=CELL_TIMEOUT)  # raises CellExecutionError on any cell error
    return nb, time.perf_counter() - start


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, builder, small_mode_dirs, monkeypatch, record_property):
    nb, seconds = _run_small(name, builder, small_mode_dirs, monkeypatch)
    record_property("runtime_s", round(seconds, 1))
    print(f"\n{name}: ran in {seconds:.1f} s (small mode)")

    errors = _relative_errors(nb)
    assert len(errors) >= MIN_CHECKS[name], (
        f"{name} printed {len(errors)} relative errors, expected at least {MIN_CHECKS[name]}")
    worst = max(errors, default=0.0)
    assert worst < LOOSEST_TOL, f"{name}: a numerical check printed relative error {worst:.2e} >= {LOOSEST_TOL}"


class _NotFoundHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request with 404, like a dead Flickr link."""

    def do_GET(self):
        self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def dead_link_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_captioning_notebook_uses_cs231n_coco_dir_and_survives_dead_links(builder, small_mode_dirs, tmp_path,
                                                                         monkeypatch, dead_link_server):
    from cs231n.data.shapes import ensure_shapes_dataset

    # A dataset in the COCO format whose image URLs are all dead http links.
    coco_dir = tmp_path / "coco"
    shutil.copytree(ensure_shapes_dataset(tmp_path / "shapes", size="tiny", verbose=False), coco_dir)
    for split in ("train", "val"):
        path = coco_dir / f"{split}2014_urls.txt"
        count = len(path.read_text(encoding="utf-8").split())
        path.write_text("".join(f"{dead_link_server}/{split}/{i}.jpg\n" for i in range(count)), encoding="utf-8")

    nb, _ = _run_small("RNN_Captioning", builder, small_mode_dirs, monkeypatch, CS231N_COCO_DIR=str(coco_dir))
    text = _stream_text(nb)
    assert "Using the COCO captioning release in " + str(coco_dir) in text
    # Every image shown (4 + 8 + 8) was a dead link: a printed reason each, and a placeholder drawn.
    assert text.count("image_from_url: HTTP 404") == 20, text
    assert max(_relative_errors(nb)) < LOOSEST_TOL


def test_language_model_notebook_without_the_text(builder, small_mode_dirs, tmp_path, monkeypatch):
    missing = tmp_path / "no_such_alice.txt"
    nb, _ = _run_small("Language_Model", builder, small_mode_dirs, monkeypatch, CS231N_ALICE_TXT=str(missing))
    text = _stream_text(nb)
    assert f"No text at {missing}" in text
    assert "Skipped: no text to train on" in text
    assert len(_relative_errors(nb)) >= MIN_CHECKS["Language_Model"]


def test_every_notebook_source_is_listed():
    sources = {p.stem for p in NOTEBOOK_DIR.glob("*.py")} - {"build"}
    assert sources == set(NOTEBOOKS), (
        "notebooks/*.py and notebooks/build.py's NOTEBOOKS disagree: add each new notebook's name there")
    for name in NOTEBOOKS:
        assert (NOTEBOOK_DIR / f"{name}.ipynb").is_file(), (
            f"notebooks/{name}.ipynb is missing; build it with python notebooks/build.py --only {name}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_matches_its_source(name):
    jupytext = pytest.importorskip("jupytext", reason="the notebook sources need jupytext (pip install -e '.[test]')")
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    committed = nbformat.read(str(path), as_version=4)
    source = jupytext.read(NOTEBOOK_DIR / f"{name}.py", fmt="py:percent")  # read directly, not via build.py
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in source.cells], (
        f"{path.name} differs from notebooks/{name}.py; rebuild it with python notebooks/build.py --only {name}")
    assert committed.metadata["kernelspec"]["name"] == "python3"
    assert committed.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{path.name} is not paired with its .py (jupytext formats metadata)")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_outputs_of_a_clean_run(name):
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, (
        f"{path.name} is {size / 1e6:.2f} MB; keep it under {MAX_NOTEBOOK_BYTES / 1e6} MB")
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), (
        f"{path.name}: the code cells were not all run once, in order (execution counts {counts})")
    for cell in code_cells:
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.name}: cell {cell.get('id')} shows an error"
    images = sum("image/png" in o.get("data", {}) for c in code_cells for o in c.outputs)
    assert images >= 1, f"{path.name} has no plots in its outputs"
    errors = _relative_errors(nb)
    assert len(errors) >= MIN_CHECKS[name]
    assert max(errors, default=0.0) < LOOSEST_TOL
    assert "small mode: False" in _stream_text(nb), f"{path.name} carries the outputs of a small-mode run"


def test_transformer_classification_notebook_without_the_data(builder, small_mode_dirs, tmp_path, monkeypatch):
    missing = tmp_path / "no_cola"
    nb, _ = _run_small("Transformer_Classification", builder, small_mode_dirs, monkeypatch,
                       CS231N_COLA_DIR=str(missing))
    text = _stream_text(nb)
    assert "No CoLA data" in text and "Skipped: no CoLA data to train on." in text
    assert len(_relative_errors(nb)) >= MIN_CHECKS["Transformer_Classification"]
