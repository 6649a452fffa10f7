"""softmaxLayer, classificationLayer and regressionLayer."""

from __future__ import annotations

import numpy as np

from ..errors import LayerError, LayerTypeError
from .base import Layer, check_single_input, constructor


class SoftmaxLayer(Layer):
    FUNCTION = "softmaxLayer"
    CLASS = "SoftmaxLayer"
    TYPE = "Softmax"
    BASE_NAME = "softmax"
    GROUPS = [(None, ["Name"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._apply_options(pairs, kwargs)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        return tuple(in_shapes[0])

    def forward(self, xs):
        """Softmax over the channels of every pixel."""
        x = xs[0]
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def describe(self):
        return "softmax"


class ClassificationOutputLayer(Layer):
    FUNCTION = "classificationLayer"
    CLASS = "ClassificationOutputLayer"
    TYPE = "Classification Output"
    BASE_NAME = "classoutput"
    OPTIONS = ["Classes", "ClassWeights", "Name"]
    GROUPS = [(None, ["Name", "Classes", "ClassWeights", "OutputSize"]), ("Hyperparameters", ["LossFunction"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p.update(Classes="auto", ClassWeights="none", OutputSize="auto", LossFunction="crossentropyex")
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key == "Classes":
            if isinstance(value, str) and value.lower() == "auto":
                self._p[key] = "auto"
            elif isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
                self._p[key] = [str(v) for v in value]
                if len(set(self._p[key])) != len(self._p[key]):
                    raise LayerError(self.label, key, value, "class names must be unique")
            else:
                raise LayerTypeError(self.label, key, value, "expected 'auto' or a list of class names")
        elif key == "ClassWeights":
            self._p[key] = value if isinstance(value, str) else np.asarray(value, np.float32)
        else:
            self._set(key, value)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        h, w, c = in_shapes[0]
        if self.Classes != "auto" and len(self.Classes) != c:
            raise LayerError(self.label, "Classes", self.Classes,
                             f"{len(self.Classes)} classes given, but the input has {c} channels")
        self._p["OutputSize"] = c
        if self.Classes == "auto":
            self._p["Classes"] = [str(i + 1) for i in range(c)]
        return tuple(in_shapes[0])

    def forward(self, xs):
        return xs[0]          # an output layer computes the loss in training; inference passes through

    def describe(self):
        classes = self.Classes
        if classes == "auto" or len(classes) < 2:
            return "crossentropyex"
        return f"crossentropyex with '{classes[0]}' and {len(classes) - 1} other classes"


class RegressionOutputLayer(Layer):
    FUNCTION = "regressionLayer"
    CLASS = "RegressionOutputLayer"
    TYPE = "Regression Output"
    BASE_NAME = "regressionoutput"
    OPTIONS = ["ResponseNames", "Name"]
    GROUPS = [(None, ["Name", "ResponseNames"]), ("Hyperparameters", ["LossFunction"])]

    def __init__(self, *pairs, **kwargs):
        Layer.__init__(self)
        self._p.update(ResponseNames=[], LossFunction="mean-squared-error")
        self._apply_options(pairs, kwargs)

    def _option(self, key, value):
        if key == "ResponseNames":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, (list, tuple)) or not all(isinstance(v, str) for v in names):
                raise LayerTypeError(self.label, key, value, "expected a list of response names")
            if len(set(names)) != len(names):
                raise LayerError(self.label, key, value, "response names must be unique")
            self._p[key] = list(names)
        else:
            self._set(key, value)

    def resolve(self, in_shapes):
        check_single_input(self, in_shapes)
        c = in_shapes[0][2]
        if self.ResponseNames and len(self.ResponseNames) != c:
            raise LayerError(self.label, "ResponseNames", self.ResponseNames,
                             f"{len(self.ResponseNames)} names given, but the input has {c} channels")
        return tuple(in_shapes[0])

    def forward(self, xs):
        return xs[0]          # the loss is for training; inference passes the responses through

    def describe(self):
        names = self.ResponseNames
        if not names:
            return "mean-squared-error"
        return f"mean-squared-error with response '{names[0]}'" + (f" and {len(names) - 1} other responses"
                                                                    if len(names) > 1 else "")


@constructor
def softmaxLayer(*pairs, **kwargs) -> SoftmaxLayer:  # noqa: N802
    """Softmax over channels."""
    return SoftmaxLayer(*pairs, **kwargs)


@constructor
def classificationLayer(*pairs, **kwargs) -> ClassificationOutputLayer:  # noqa: N802
    """Classification output layer; in inference it passes its input (the probabilities) through."""
    return ClassificationOutputLayer(*pairs, **kwargs)


@constructor
def regressionLayer(*pairs, **kwargs) -> RegressionOutputLayer:  # noqa: N802
    """Regression output layer (mean squared error); in inference it passes its input through."""
    return RegressionOutputLayer(*pairs, **kwargs)
