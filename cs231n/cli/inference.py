"""``evaluate`` (scores of a saved model on a split) and ``caption`` (captions of image files): the
commands that use a trained captioning model."""
import contextlib
import json
import sys
import zipfile
from pathlib import Path

from cs231n.cli.models import (_check_decoding_options, _check_identity, _data_dir_of, _featurizer_files, _identity,
                               _load_data, _load_model, _takes_regions)
from cs231n.cli.options import OptionError
from cs231n.cli.options import add_command, add_device_option, existing_dir, existing_file, nonnegative_float, positive_int


def _add_evaluate(sub):
    p = add_command(sub, "evaluate", "score a saved model on a split",
                    "Caption every image of a split with a saved model and print multi-reference BLEU-1..4 "
                    "and CIDEr. The dataset must be the one the model was trained on (same vocabulary and "
                    "features); by default it is the one recorded in the model file.")
    p.add_argument("--checkpoint", required=True, type=existing_file,
                   help="model.npz from train (or its checkpoint.npz)")
    p.add_argument("--data-dir", type=existing_dir,
                   help="dataset directory (default: the one the model was trained on)")
    p.add_argument("--split", choices=["train", "val"], default="val", help="which split to score")
    p.add_argument("--beam-size", type=positive_int, default=1, help="beam width (1: greedy)")
    p.add_argument("--length-penalty", type=nonnegative_float, default=0.0,
                   help="beam search: divide log-probabilities by length ** this")
    p.add_argument("--max-length", type=positive_int, default=30, help="longest caption generated")
    p.add_argument("--num-images", type=positive_int, help="score only the first N images of the split")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    add_device_option(p)
    p.set_defaults(func=cmd_evaluate)


def _add_caption(sub):
    p = add_command(sub, "caption", "caption image files (shapes-dataset models)",
                    "Featurize the images with the featurizer of the shapes dataset the model was trained "
                    "on, then caption them. A model trained on COCO needs COCO's VGG16 fc7 + PCA features, "
                    "which this command cannot compute.")
    p.add_argument("--checkpoint", required=True, type=existing_file, help="model.npz from train")
    p.add_argument("--data-dir", type=existing_dir,
                   help="the shapes dataset the model was trained on, for its featurizer (default: the "
                        "one recorded in the model file)")
    p.add_argument("--beam-size", type=positive_int, default=1, help="beam width (1: greedy)")
    p.add_argument("--max-length", type=positive_int, default=30, help="longest caption generated")
    p.add_argument("--attention", metavar="FIG.png",
                   help="a model that attends over regions (train --cell-type attention, or --model transformer "
                        "--regions): also draw, for each generated word, the image with its attention weights "
                        "over the regions, one row per image, into this PNG")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or URLs")
    add_device_option(p)
    p.set_defaults(func=cmd_caption)


def cmd_evaluate(a):
    import numpy as np

    from cs231n.data.shapes.accuracy import format_scene_accuracy, judge_dataset_captions
    from cs231n.metrics import score_model

    model = _load_model(a.checkpoint).to(a.device)
    _check_decoding_options(a, model)
    regions = _takes_regions(model)  # an attention LSTM or a region Transformer reads *_regions.h5
    base, data = _load_data(_data_dir_of(a, model), regions=regions)
    if data["word_to_idx"] != model.word_to_idx:
        from cs231n.classifiers.captioning import _vocab_difference

        raise ValueError(f"the vocabulary of {base} differs from the one {a.checkpoint} was trained with "
                         f"({_vocab_difference(model.word_to_idx, data['word_to_idx'])}); captions would be "
                         f"decoded into the wrong words. Pass the model's own dataset with --data-dir")
    _check_identity(model, a.checkpoint, base, _identity(base, data, regions=regions), ("vocabulary", "features"))
    # Decode with the model's own vocabulary (equal to the dataset's, checked above).
    data = dict(data, idx_to_word=[model.idx_to_word[i] for i in range(model.vocab_size)])
    if (model.identity or {}).get("zero_features"):
        print("note: this model was trained with --zero-features (image-blind); it is scored on zero "
              "features as well", file=sys.stderr)
        data[f"{a.split}_features"] = np.zeros_like(data[f"{a.split}_features"])
    scores, captions = score_model(model, data, split=a.split, num_images=a.num_images, beam_size=a.beam_size,
                                   length_penalty=a.length_penalty, max_length=a.max_length, return_captions=True)
    scene, _ = judge_dataset_captions(base, a.split, captions)  # None unless a shapes dataset
    if a.json:
        print(json.dumps({**scores, **(scene or {})}))
    else:
        mode = "greedy" if a.beam_size == 1 else f"beam {a.beam_size}"
        print(f"{a.split} of {base} ({mode}):")
        for k, v in scores.items():
            print(f"  {k:7} {v:.4f}")
        if scene is not None:
            print("  " + format_scene_accuracy(scene))
    return 0


def cmd_caption(a):
    import numpy as np

    from cs231n.data.shapes import default_shapes_dir, featurize_for_dataset, featurize_regions_for_dataset
    from cs231n.image_utils import image_from_url
    from cs231n.runs import dataset_identity

    model = _load_model(a.checkpoint).to(a.device)
    _check_decoding_options(a, model)
    regions = _takes_regions(model)
    if a.attention and not regions:
        raise OptionError(f"--attention needs a model that attends over image regions (train --cell-type attention "
                          f"or --model transformer --regions); {a.checkpoint} holds {model._describe()}")
    base = Path(_data_dir_of(a, model) or default_shapes_dir())
    featurizer = _featurizer_files()[0]
    if not (base / featurizer).is_file():
        raise ValueError(f"{base} has no shapes featurizer ({featurizer}). `caption` featurizes images "
                         f"with the shapes dataset's featurizer; a model trained on COCO needs COCO's VGG16 fc7 "
                         f"+ PCA features, which this command cannot compute")
    if model.identity is not None and not model.identity.get("featurizer"):
        raise ValueError(f"{a.checkpoint} was trained on {model.identity['dataset']}, which has no shapes "
                         f"featurizer: its features come from elsewhere (e.g. COCO's VGG16), so `caption` "
                         f"cannot make them")
    current = dataset_identity(base, model.word_to_idx, (), _featurizer_files())
    _check_identity(model, a.checkpoint, base, current, ("featurizer",))
    images, names, failed = [], [], []
    for name in a.images:
        with contextlib.redirect_stdout(sys.stderr):  # image_from_url prints its reason (classic API)
            img = image_from_url(name)
        if img is None:
            failed.append(name)
            continue
        images.append(img)
        names.append(name)
    if images:
        try:
            feats, doubts = featurize_for_dataset(images, base, return_doubts=True)
            if regions:
                feats, boxes = featurize_regions_for_dataset(images, base)  # (N, R, D), (N, R, 4)
        except (zipfile.BadZipFile, EOFError, KeyError, OSError, ValueError) as e:
            raise ValueError(f"{base / featurizer} is damaged or truncated ({e}); make the dataset again "
                             f"(delete {base} and run train)") from e
        if (model.identity or {}).get("zero_features"):
            print("note: this model was trained with --zero-features (image-blind); its captions do not "
                  "depend on the image", file=sys.stderr)
            feats = np.zeros_like(feats)
        if feats.shape[-1] != model.params["W_proj"].shape[0]:
            raise ValueError(f"the model expects {model.params['W_proj'].shape[0]} features per "
                             f"{'region' if regions else 'image'}, the featurizer of {base} gives {feats.shape[-1]}")
        if a.attention:
            captions, weights = model.sample(feats, max_length=a.max_length, beam_size=a.beam_size,
                                             return_attention=True)  # (N, T), (N, T, R)
            texts = [model._decode_row(row) for row in captions]
            _draw_attention(a.attention, images, model, captions, weights, boxes)
        else:
            texts = model.caption_features(feats, max_length=a.max_length, beam_size=a.beam_size)
        for name, caption, reasons in zip(names, texts, doubts):
            print(f"{name}: {caption}", flush=True)
            if reasons:  # a diagnostic: on stderr, like every other (stdout holds only the captions)
                print(f"warning: {name} is unlike the training images ({'; '.join(reasons)}); do not trust "
                      f"its caption", file=sys.stderr, flush=True)
    if failed:
        print(f"error: {len(failed)} of {len(a.images)} images could not be read ({', '.join(failed)}); "
              f"see the reasons above", file=sys.stderr)
        return 1
    return 0


def _draw_attention(path, images, model, captions, weights, boxes):
    """Write the attention figure of `caption --attention`: one row per image, one panel per generated word
    (``<END>`` included), each the image with that word's attention weights over the regions."""
    import matplotlib.pyplot as plt

    from cs231n.vis import attention_maps

    tokens = [[model.idx_to_word.get(int(i), "<UNK>") for i in row if int(i) != model._null] for row in captions]
    fig = attention_maps(images, tokens, [w[:len(t)] for w, t in zip(weights, tokens)], boxes, path=path)
    plt.close(fig)
    print(f"attention maps: {path}")
