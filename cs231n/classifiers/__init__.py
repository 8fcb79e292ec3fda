"""Models built from the layers: the image-captioning RNN and Transformer (shared base in captioning.py)
and the sentence classifiers (shared base in sentence.py).

Every model kind is imported here, so each has registered its file format with its base class
(``CaptioningModel.load``, ``load_sentence_classifier``) before anything is loaded; the bases never
import their subclasses.
"""
from cs231n.classifiers.captioning import CaptioningModel
from cs231n.classifiers.classification_transformer import ClassificationTransformer
from cs231n.classifiers.ngram import NgramClassifier
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.classifiers.sentence import BagOfWordsClassifier, LSTMClassifier, SentenceClassifier
from cs231n.classifiers.transformer import CaptioningTransformer

__all__ = ["BagOfWordsClassifier", "CaptioningModel", "CaptioningRNN", "CaptioningTransformer",
           "ClassificationTransformer", "LSTMClassifier", "NgramClassifier", "SentenceClassifier"]
