"""Choosing on training images held out of training, so that the val split is scored only once.

``train --holdout`` keeps the epoch that does best on them and ``sweep --holdout`` ranks its trials on
them; both take the number of images and the solver options from here. The split itself is
:func:`cs231n.coco_utils.hold_out_images`; the solver options are those of
:class:`cs231n.captioning_solver.CaptioningSolver`. Importing this module imports nothing heavy (the
command line reads its default at start-up).
"""

DEFAULT_HOLDOUT = 500  # training images held out by default (at most a tenth of them: holdout_size)


def holdout_size(holdout, num_images, num_val_images=0):
    """How many of ``num_images`` training images to hold out (train's and sweep's --holdout): None is the
    default, DEFAULT_HOLDOUT images, at most a tenth of them, and 0 when ``num_val_images`` chooses on val
    images instead; a given value must leave images to train on (ValueError). Returns an int >= 0."""
    if holdout is None:
        return 0 if num_val_images else min(DEFAULT_HOLDOUT, num_images // 10)
    if holdout >= num_images:
        raise ValueError(f"holdout {holdout} holds out every training image (there are {num_images})")
    return int(holdout)


def held_out_selection(base, data, holdout, seed):
    """(data whose "val" split is ``holdout`` training images held out of its training captions, the
    CaptioningSolver options that validate on them): train's --holdout, and each trial of a sweep.

    The images are drawn by :func:`cs231n.coco_utils.hold_out_images` with ``seed`` (ValueError when the
    training captions show too few images); on a shapes dataset they are judged against their train scenes
    and the epoch is chosen by the captions entirely right, else by CIDEr.
    """
    from cs231n.coco_utils import hold_out_images
    from cs231n.data.shapes.accuracy import load_scenes

    train, held = hold_out_images(data, holdout, seed=seed)
    selection = {"num_val_images": holdout, "val_name": "held-out", "select_on": "CIDEr"}
    scenes = load_scenes(base, "train")
    if scenes is not None and len(scenes) == len(data["train_features"]):
        selection.update(val_scenes=[scenes[i] for i in held["image_ids"].tolist()], select_on="scene_right")
    train.update((k, v) for k, v in held.items() if k != "image_ids")
    return train, selection
