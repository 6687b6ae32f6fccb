"""Normalizations of the networks, with their registry by name.

Each network chooses one (`g_norm`, `d_norm`): batch (Ioffe & Szegedy 2015), layer (Ba et al.
2016), spectral (Miyato et al. 2018: every linear/conv layer of that network, its output layer and
the projection embedding included) or none. A normalization that acts on features sits on the
hidden layers; one that wraps layers wraps every linear layer of its network. A network builds its
layers through `linear` and `feature_norm` and runs them through `apply` and `normalize`, so a new
normalization is one entry in NORMALIZATIONS.
"""

import dataclasses
from typing import Callable, Optional

from gan import layers, registry


@dataclasses.dataclass(frozen=True)
class Normalization:
    """A network's normalization, with the rules the networks and the trainer follow.

    feature(num_features, config, bn_momentum): the normalizer of a hidden layer's features, or
        None for a normalization that does not act on features;
    wrap(layer): the layer wrapped (e.g. spectrally normalized), or None to leave it as it is;
        a wrapper whose `takes_training` is true is called with `training`;
    per_example: each example's output depends on that example alone, so the trainer may run D
        once on real and fake stacked;
    cancels_bias: its mean subtraction cancels the bias of the layer before it, so that layer
        has none.
    """
    feature: Optional[Callable]
    wrap: Optional[Callable]
    per_example: bool
    cancels_bias: bool


def _batch_norm(num_features, config, bn_momentum):
    return layers.BatchNorm(bn_momentum, config.bn_epsilon, num_features=num_features,
                            cross_replica=config.sync_batchnorm)


NORMALIZATIONS = {
    "batch": Normalization(_batch_norm, None, per_example=False, cancels_bias=True),
    "layer": Normalization(lambda num_features, config, bn_momentum: layers.LayerNorm(
        num_features=num_features), None, per_example=True, cancels_bias=True),
    "spectral": Normalization(None, layers.SpectralNorm, per_example=True, cancels_bias=False),
    "none": Normalization(None, None, per_example=True, cancels_bias=False),
}


def normalization(name):
    return registry.lookup(NORMALIZATIONS, name, "normalization")


def linear(layer, norm):
    """The layer, wrapped as its network's normalization wants (e.g. spectrally normalized)."""
    wrap = normalization(norm).wrap
    return layer if wrap is None else wrap(layer)


def apply(layer, x, training):
    """Runs a linear/conv layer; a wrapper that declares `takes_training` (spectral norm's power
    iteration) is given `training`."""
    return layer(x, training) if getattr(layer, "takes_training", False) else layer(x)


def feature_norm(norm, num_features, config, bn_momentum):
    """The hidden-layer normalizer of a network (None for a normalization without one)."""
    feature = normalization(norm).feature
    return None if feature is None else feature(num_features, config, bn_momentum)


def normalize(norm_layer, x, training):
    return x if norm_layer is None else norm_layer(x, training)
