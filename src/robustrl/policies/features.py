"""From raw observations to network inputs: normalisation, image layout and scale, feature extractors.

Every policy module in :mod:`robustrl.policies.networks` starts with an :class:`ObservationFeatures`,
which applies, in Stable-Baselines3's order (VecNormalize wrapper, VecTransposeImage wrapper,
``preprocess_obs``, features extractor):

1. one-hot encoding of Discrete observations;
2. the optional observation normaliser :class:`ObsNormalizer` (a running normaliser of our agents, or the
   statistics of an SB3 ``VecNormalize`` wrapper);
3. ``channels_last`` images ``[N, H, W, C]`` are transposed to ``[N, C, H, W]`` (SB3's ``VecTransposeImage``);
4. ``normalize_images``: uint8 image observations (:func:`is_image_space`) are divided by 255;
5. the extractor: flattening, or the Nature CNN (:class:`NatureCNN`).

Everything is part of the torch module, so attacks differentiate through the whole pipeline from raw
observations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn

Activation = Literal["tanh", "relu"]
FeaturesExtractor = Literal["flatten", "nature_cnn"]
"""``"flatten"``: the observation flattened (SB3's ``FlattenExtractor``); ``"nature_cnn"``: :class:`NatureCNN`."""
StatsDType = Literal["float32", "float64"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def mlp(in_dim: int, hidden: Sequence[int], activation: Activation = "tanh") -> nn.Sequential:
    """Hidden layers only: ``Linear → act`` per entry of ``hidden`` (empty ``hidden`` gives identity).

    Raises:
        ValueError: ``activation`` is not one of ``"tanh"``, ``"relu"``.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {', '.join(_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), _ACTIVATIONS[activation]()]
        in_dim = width
    return nn.Sequential(*layers)


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    """Orthogonal weights with ``gain`` and zero biases on every Linear and Conv2d layer of ``module`` (PPO, SB3)."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(m.weight, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def flat_dim(space: gym.Space[Any]) -> int:
    """Number of features of a flattened observation from ``space``."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    raise ValueError(f"unsupported observation space {space!r}: only Box and Discrete")


def is_image_space(space: gym.Space[Any]) -> bool:
    """Whether SB3 treats ``space`` as an image: a uint8 Box with 3 dimensions and bounds exactly [0, 255].

    This is SB3's ``is_image_space`` (without the channel-count check): such observations are divided by
    255 when ``normalize_images`` is set, and SB3 transposes them to channel-first when their smallest
    dimension is not the first.

    Example:
        >>> is_image_space(gym.spaces.Box(0, 255, (36, 36, 3), np.uint8))
        True
        >>> is_image_space(gym.spaces.Box(0.0, 1.0, (36, 36, 3)))
        False
    """
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and space.dtype == np.uint8
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == 255))
    )


def is_channels_last_image(space: gym.Space[Any]) -> bool:
    """Whether SB3 would wrap an env with this observation space in ``VecTransposeImage``.

    That is an image space (:func:`is_image_space`) whose smallest dimension is not the first (SB3's
    ``is_image_space_channels_first`` heuristic): SB3's policy then sees ``[C, H, W]`` observations.
    """
    return is_image_space(space) and int(np.argmin(tuple(space.shape or ()))) != 0


class ObsNormalizer(nn.Module):
    """Running mean/variance normaliser ``clip((obs − mean) / sqrt(var + eps), ±clip)``.

    The formula of SB3's ``VecNormalize.normalize_obs``; the arithmetic runs in the statistics' dtype and
    the result is float32 (SB3 computes in float64 and casts to float32, so ``dtype=torch.float64``
    reproduces it bit for bit).

    Args:
        shape: one observation's shape.
        clip: clip of the normalised value.
        eps: variance floor.
        dtype: dtype of ``mean`` and ``var`` and of the arithmetic.
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(
        self, shape: Sequence[int], clip: float = 10.0, eps: float = 1e-8, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.clip = float(clip)
        self.eps = float(eps)
        self.register_buffer("mean", torch.zeros(tuple(shape), dtype=dtype))
        self.register_buffer("var", torch.ones(tuple(shape), dtype=dtype))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge the statistics of ``batch [B, *shape]`` (parallel Welford update)."""
        batch = batch.to(self.mean.dtype)
        b_mean = batch.mean(0)
        b_var = batch.var(0, unbiased=False)
        b_count = batch.shape[0]
        total = self.count + b_count
        delta = b_mean - self.mean
        new_mean = self.mean + delta * (b_count / total).to(self.mean.dtype)
        m2 = self.var * self.count.to(self.var.dtype) + b_var * b_count
        m2 = m2 + delta.square() * (self.count * b_count / total).to(self.var.dtype)
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total.to(self.var.dtype))
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalise ``obs [N, *shape]`` (any real dtype) into float32."""
        x = obs.to(self.mean.dtype)
        return ((x - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip).float()


def nature_cnn_flat_dim(height: int, width: int) -> int:
    """Features after :class:`NatureCNN`'s convolutions for ``height × width`` images (64 channels).

    Raises:
        ValueError: the image is smaller than 36×36 (the convolutions would leave nothing).
    """
    h, w = height, width
    for kernel, stride in ((8, 4), (4, 2), (3, 1)):
        h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    if h < 1 or w < 1:
        raise ValueError(f"NatureCNN needs images of at least 36×36 pixels, got {height}×{width}")
    return 64 * h * w


class NatureCNN(nn.Module):
    """The Nature DQN convolutional trunk (Mnih et al., 2015), with SB3's ``NatureCNN`` layer names.

    ``conv 32×8×8 /4 → ReLU → conv 64×4×4 /2 → ReLU → conv 64×3×3 /1 → ReLU → flatten`` (``cnn.{0,2,4}``),
    then ``Linear(·, features_dim) → ReLU`` (``linear.0``).

    Args:
        in_channels: channels of the ``[N, C, H, W]`` input.
        height: image height.
        width: image width.
        features_dim: output features.
    """

    def __init__(self, in_channels: int, height: int, width: int, features_dim: int = 512) -> None:
        super().__init__()
        n_flatten = nature_cnn_flat_dim(height, width)
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4, padding=0),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=0),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features ``[N, features_dim]`` of ``images [N, C, H, W]`` (float)."""
        return self.linear(self.cnn(images))


class ObservationFeatures(nn.Module):
    """Raw observations ``[N, *obs_shape]`` to features ``[N, out_dim]`` (see the module docstring for the steps).

    Args:
        observation_space: one observation's space.
        normalize_obs: keep an :class:`ObsNormalizer`.
        obs_norm_clip: its clip.
        obs_norm_eps: its variance floor.
        obs_norm_dtype: dtype of its statistics and arithmetic (``"float64"`` reproduces SB3's VecNormalize).
        extractor: ``"flatten"`` or ``"nature_cnn"`` (needs a 3-dimensional Box, at least 36×36).
        features_dim: output features of the Nature CNN.
        normalize_images: divide image observations (:func:`is_image_space`) by 255, as SB3's
            ``normalize_images``.
        channels_last: observations are ``[H, W, C]`` images; they are transposed to ``[C, H, W]`` first.
    """

    def __init__(
        self,
        observation_space: gym.Space[Any],
        normalize_obs: bool = False,
        obs_norm_clip: float = 10.0,
        obs_norm_eps: float = 1e-8,
        obs_norm_dtype: StatsDType = "float32",
        extractor: FeaturesExtractor = "flatten",
        features_dim: int = 512,
        normalize_images: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.discrete = isinstance(observation_space, gym.spaces.Discrete)
        self.n = int(observation_space.n) if self.discrete else 0  # type: ignore[attr-defined]
        self.start = int(observation_space.start) if self.discrete else 0  # type: ignore[attr-defined]
        shape = (self.n,) if self.discrete else tuple(observation_space.shape or ())
        if obs_norm_dtype not in _DTYPES:
            raise ValueError(f"obs_norm_dtype must be one of {', '.join(_DTYPES)}, got {obs_norm_dtype!r}")
        self.obs_norm = (
            ObsNormalizer(shape, obs_norm_clip, obs_norm_eps, _DTYPES[obs_norm_dtype]) if normalize_obs else None
        )
        if (channels_last or extractor == "nature_cnn") and (self.discrete or len(shape) != 3):
            raise ValueError(
                f"channels_last and the nature_cnn extractor need 3-dimensional image observations, "
                f"got {observation_space!r}"
            )
        self.channels_last = bool(channels_last)
        self.scale_images = bool(normalize_images) and is_image_space(observation_space)
        self.image_shape = (shape[2], shape[0], shape[1]) if channels_last else shape
        self.extractor: NatureCNN | None = None
        if extractor == "nature_cnn":
            self.extractor = self.make_extractor(features_dim)
            self.out_dim = int(features_dim)
        elif extractor == "flatten":
            self.out_dim = math.prod(shape)
        else:
            raise ValueError(f"unknown features extractor {extractor!r}; known: flatten, nature_cnn")

    def make_extractor(self, features_dim: int) -> NatureCNN:
        """A fresh Nature CNN for this observation shape (a separate critic trunk uses a second one)."""
        c, h, w = self.image_shape
        return NatureCNN(c, h, w, features_dim)

    def preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        """Steps 1–4: float32 ``[N, *shape]`` (``[N, C, H, W]`` for ``channels_last`` images)."""
        if self.discrete:
            obs = nn.functional.one_hot(obs.long() - self.start, self.n)
        x = self.obs_norm(obs) if self.obs_norm is not None else obs.float()
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        if self.scale_images:
            x = x / 255.0
        return x

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Features ``[N, out_dim]``."""
        x = self.preprocess(obs)
        return self.extractor(x) if self.extractor is not None else x.flatten(1)


def check_obs(obs: torch.Tensor, space: gym.Space[Any]) -> None:
    """Raise a ValueError unless ``obs`` is a batch ``[N, *space.shape]``."""
    shape = tuple(space.shape or ())
    if tuple(obs.shape[1:]) != shape:
        raise ValueError(f"obs has shape {tuple(obs.shape)}; expected [N, {', '.join(map(str, shape))}]")


def sample_normal(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``mean + std·ε`` with ``ε ~ N(0, 1)`` drawn from ``generator``."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * noise
