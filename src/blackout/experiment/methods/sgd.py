"""Plain fine-tuning: the baseline that forgets."""

from .base import Method


class SGD(Method):
    name = "sgd"
