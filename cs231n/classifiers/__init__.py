"""Models built from the layers: the image-captioning RNN."""
from cs231n.classifiers.rnn import CaptioningRNN

__all__ = ["CaptioningRNN"]
