"""What the captioning commands share: loading a dataset, a saved model (model.npz or a checkpoint), and
checking that the two belong together (the model's record of its data)."""
import os
import sys
from pathlib import Path


def _featurizer_files():
    """Names of the files that featurize new images for a dataset (the shapes featurizer)."""
    from cs231n.data import shapes

    return (shapes.FEATURIZER_FILE,)


def _load_data(data_dir, max_train=None, regions=False):
    """(base, data); with ``regions``, data's ``{split}_features`` are the region features (SPEC section 10)."""
    from cs231n.coco_utils import load_coco_data, with_regions
    from cs231n.data.shapes import ensure_shapes_dataset

    base = Path(data_dir) if data_dir else ensure_shapes_dataset()
    data = load_coco_data(base_dir=str(base), max_train=max_train, regions=regions)
    return base, with_regions(data) if regions else data


def _identity(base, data, regions=False):
    """The identity of a loaded dataset (see cs231n.runs.dataset_identity): what a model records."""
    from cs231n.runs import captioning_data_identity

    return captioning_data_identity(base, data["word_to_idx"], regions=regions)


def _takes_regions(model):
    """Whether a captioning model reads region features (an attention LSTM, a region Transformer)."""
    return bool(getattr(model, "_takes_regions", lambda: False)())


def _load_model(path):
    """A CaptioningRNN or CaptioningTransformer from model.npz (its ``save``) or from a solver checkpoint.

    The model's ``identity`` is the record of its training data (None for files of older versions).
    """
    from cs231n.archive import load_archive
    from cs231n.classifiers.captioning import CaptioningModel, model_formats
    from cs231n.solver import CHECKPOINT_FORMAT, load_checkpoint

    _, meta = load_archive(path)
    if meta.get("format") in model_formats():
        return CaptioningModel.load(path)
    if meta.get("kind") == "LanguageModelRNN" or meta.get("solver") == "LanguageModelSolver":
        raise ValueError(f"{path} is a language-model file (from lm-train); this command needs a captioning "
                         f"model (model.npz from train). Use lm-sample for language models.")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is neither a captioning model nor a training checkpoint (format "
                         f"{meta.get('format')!r}); use the model.npz that train wrote")
    ckpt = load_checkpoint(path)
    model = CaptioningModel.from_config(ckpt["meta"]["model_config"])
    params = ckpt["best_params"] or ckpt["params"]
    model.params.update({k: v.astype(model.dtype) for k, v in params.items()})
    model.identity = ckpt["meta"].get("extra", {}).get("identity")
    return model


def _data_dir_of(a, model):
    """--data-dir, else the dataset recorded in the model file, else the default shapes dataset (None)."""
    if a.data_dir:
        return a.data_dir
    recorded = (model.identity or {}).get("dataset")
    if recorded and not os.path.isdir(recorded):
        raise FileNotFoundError(f"{a.checkpoint} was trained on {recorded}, which is not there any more; pass "
                                f"that dataset's new location with --data-dir")
    return recorded


def _check_identity(model, checkpoint, base, current, parts):
    """Refuse a dataset that is not the model's (ValueError); warn when the model has no record of it."""
    from cs231n.runs import identity_problems

    if model.identity is None:
        print(f"warning: {checkpoint} was saved by an older version and does not record the data it was "
              f"trained on; the results assume {base} is that dataset", file=sys.stderr)
        return
    problems = identity_problems(model.identity, current, parts)
    if problems:
        raise ValueError(f"{base} is not the dataset {checkpoint} was trained on ({model.identity['dataset']}): "
                         f"{'; '.join(problems)}. Its results would be meaningless; pass the model's own "
                         f"dataset with --data-dir")


def _val_images(data, split, idxs):
    from cs231n.image_utils import image_from_url

    return [image_from_url(data[f"{split}_urls"][i], placeholder=True) for i in idxs]


def _check_decoding_options(a, model):
    """Bounds of --beam-size and --max-length from the model: a beam wider than the vocabulary keeps
    nothing more, and a Transformer decodes at most its table of positions (OptionError: exit 2,
    before any data is loaded)."""
    from cs231n.cli.options import OptionError

    try:
        model._check_sample_length("--max-length", a.max_length)
    except ValueError as e:
        raise OptionError(f"--max-length {a.max_length} is longer than this model can decode: "
                          f"{str(e).split(': ', 1)[-1]}; use --max-length {model.max_length} or less") from e

    if a.beam_size > model.vocab_size:
        raise OptionError(f"--beam-size {a.beam_size} is wider than the model's vocabulary ({model.vocab_size} "
                          f"words): every beam step keeps at most that many distinct candidates per word. Use "
                          f"--beam-size {model.vocab_size} or less (1 to 10 is usual)")
