"""Models built from the layers: the image-captioning RNN and Transformer (shared base in captioning.py)."""
from cs231n.classifiers.captioning import CaptioningModel
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.classifiers.transformer import CaptioningTransformer

__all__ = ["CaptioningModel", "CaptioningRNN", "CaptioningTransformer"]
