"""Model kinds of a sweep: a kind is a value of the search space's ``model`` key.

Each kind maps to ``(build(config, data) -> model, from_checkpoint(model_config) -> untrained model of
that config)``; a new captioning model joins sweeps by adding its kind to :data:`MODEL_KINDS`.
"""
import numpy as np

def _recurrent_model(config, data):
    from cs231n.classifiers.rnn import CaptioningRNN

    return CaptioningRNN(data["word_to_idx"], input_dim=int(np.asarray(data["train_features"]).shape[1]),
                         wordvec_dim=config["wordvec_dim"], hidden_dim=config["hidden_dim"],
                         cell_type=config["model"])


def _recurrent_from_checkpoint(model_config):
    from cs231n.classifiers.rnn import CaptioningRNN

    return CaptioningRNN.from_config(model_config)


def _transformer_model(config, data):
    from cs231n.classifiers.transformer import CaptioningTransformer

    return CaptioningTransformer(data["word_to_idx"], int(np.asarray(data["train_features"]).shape[1]),
                                 config["wordvec_dim"], num_heads=config["num_heads"],
                                 num_layers=config["num_layers"])


def _transformer_from_checkpoint(model_config):
    from cs231n.classifiers.transformer import CaptioningTransformer

    return CaptioningTransformer.from_config(model_config)


# kind -> (build(config, data) -> model, from_checkpoint(model_config) -> untrained model of that config).
# A new captioning model joins sweeps by adding its kind here.
MODEL_KINDS = {
    "rnn": (_recurrent_model, _recurrent_from_checkpoint),
    "lstm": (_recurrent_model, _recurrent_from_checkpoint),
    "gru": (_recurrent_model, _recurrent_from_checkpoint),
    "transformer": (_transformer_model, _transformer_from_checkpoint),  # uses wordvec_dim, num_heads, num_layers
}
