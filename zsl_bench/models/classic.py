"""Classic zero-shot heads on feature vectors (e.g. the xlsa17 ResNet-101 features, ``data.features: res101``).

All score a sample x [D] against a class with attribute vector a [A] by a bilinear compatibility
F(x, a) = θ(x)ᵀ W a, i.e. ``attr = θ(x) W`` [B, A] and ``class_scores = attr · attᵀ``; they differ in how W is
learnt (s_c = F(x, a_c) for the seen classes, t the true class, Δ the margin):

* ``eszsl`` — ESZSL (Romera-Paredes & Torr, 2015), closed form with squared loss against Y ∈ {−1, 1}:
  W = (X Xᵀ + 10^alpha I)⁻¹ X Y S (Sᵀ S + 10^gamma I)⁻¹, X [D, n] the training features, S [z, A] the seen
  classes' attributes. X Xᵀ and X Y S are summed over an epoch's batches and W is solved when the model is next
  evaluated, so one epoch (``train.epochs: 1``) gives the exact full-data solution; later epochs repeat it.
* ``ale`` — ALE (Akata et al., 2013/2016): weighted approximate ranking,
  ℓ = (β_r / r) Σ_{c≠t} max(0, Δ + s_c − s_t), r the number of violating classes, β_r = Σ_{j≤r} 1/j.
* ``devise`` — DeViSE (Frome et al., 2013): hinge rank loss Σ_{c≠t} max(0, Δ + s_c − s_t).
* ``sje`` — SJE (Akata et al., 2015): structured max-margin on the most violating class,
  max(0, max_{c≠t}(Δ + s_c) − s_t).

θ(x) is x, L2-normalised with ``normalize`` (ALE/DeViSE/SJE). Options: ``feature_dim`` (2048 for res101), the
margin, and ESZSL's ``alpha``/``gamma`` (log10 of its two regularisers). The heads are tiny already: ``<name>_test``
is the same model under the name smoke runs look for.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zsl_bench.errors import UserError
from zsl_bench.models.base import TrainContext, ZslModel
from zsl_bench.models.family import TINY_TRANSFORM, ModelFamily


class FeatureModel(ZslModel):
    """A model whose input is a feature vector [B, D] (its family declares ``inputs="features"``, so the engine
    feeds it from a feature dataset)."""

    def __init__(self, feature_dim: int, num_attributes: int) -> None:
        super().__init__()
        if feature_dim < 1 or num_attributes < 1:
            raise UserError(f"feature_dim and num_attributes must be >= 1 (got {feature_dim}, {num_attributes})")
        self.feature_dim = feature_dim

    def check(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` as float [B, D], or a one-line ``UserError`` naming the mismatch."""
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise UserError(f"{type(self).__name__} takes feature vectors [B, D], got {shape}; set data.features")
        if features.shape[1] != self.feature_dim:
            raise UserError(
                f"the features are {features.shape[1]}-d but the model expects {self.feature_dim}; "
                f"set model.options.feature_dim={features.shape[1]}"
            )
        return features.float()


class Bilinear(FeatureModel):
    """θ(x) W → ``attr`` [B, A], W [D, A] learnt by a ranking loss (``ale``, ``devise`` or ``sje``)."""

    def __init__(self, num_attributes: int, feature_dim: int, ranking: str, margin: float, normalize: bool) -> None:
        super().__init__(feature_dim, num_attributes)
        if ranking not in ("ale", "devise", "sje"):
            raise ValueError(f"unknown ranking loss {ranking!r}")
        if margin < 0:
            raise UserError(f"margin must be >= 0 (got {margin})")
        self.ranking = ranking
        self.margin = float(margin)
        self.normalize = normalize
        self.weight = nn.Parameter(torch.randn(feature_dim, num_attributes) / math.sqrt(feature_dim))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features [B, D] → {"attr": θ(x) W [B, A]}."""
        x = self.check(features)
        if self.normalize:
            x = F.normalize(x, dim=-1)
        return {"attr": x @ self.weight}

    def loss(
        self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], class_attributes_seen: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{"total", "ranking"}: the model's ranking loss over the seen classes (``batch["target"]`` [B] rows)."""
        scores = self.class_scores(out, class_attributes_seen)  # [B, S]
        target = batch["target"]
        true = scores.gather(1, target[:, None])  # [B, 1]
        violation = (self.margin + scores - true).clamp_min(0.0)
        violation = violation.masked_fill(F.one_hot(target, scores.shape[1]).bool(), 0.0)  # [B, S], 0 at t
        if self.ranking == "sje":
            per_sample = violation.max(dim=1).values
        elif self.ranking == "devise":
            per_sample = violation.sum(dim=1)
        else:  # ale: rank-weighted, β_r / r with r the number of violators
            with torch.no_grad():
                rank = (violation > 0).sum(dim=1)  # [B]
                harmonic = torch.cat([scores.new_zeros(1), (1.0 / torch.arange(1, scores.shape[1] + 1)).cumsum(0)])
                weight = harmonic.to(scores.device)[rank] / rank.clamp_min(1)
            per_sample = weight * violation.sum(dim=1)
        loss = per_sample.mean()
        return {"total": loss, "ranking": loss.detach()}


class ESZSL(FeatureModel):
    """ESZSL's closed form (see the module docstring): ``attr = x V`` [B, A] with V [D, A] solved from the sums
    X Xᵀ [D, D] and X Y S [D, A] gathered over the current epoch's training batches.

    V is a parameter (so the optimiser has something to hold) that never receives a gradient: the returned
    ``total`` is the batch's squared loss for the record only.
    """

    def __init__(self, num_attributes: int, feature_dim: int, alpha: float, gamma: float) -> None:
        super().__init__(feature_dim, num_attributes)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.weight = nn.Parameter(torch.zeros(feature_dim, num_attributes))
        self._epoch: int | None = None
        self._xx: torch.Tensor | None = None  # [D, D] float64
        self._xys: torch.Tensor | None = None  # [D, A] float64
        self._seen: torch.Tensor | None = None  # [S, A] float64
        self._pending = False

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features [B, D] → {"attr": x V [B, A]}; in eval mode, first solves V if new sums are pending."""
        x = self.check(features)
        if not self.training and self._pending:
            self.solve()
        return {"attr": x @ self.weight}

    def training_loss(self, batch: dict[str, torch.Tensor], ctx: TrainContext) -> dict[str, torch.Tensor]:
        """Add the batch to the epoch's sums; ``total``/``mse``: ‖x V Sᵀ − Y‖² per entry under the current V."""
        x = self.check(batch["image"])
        seen = ctx.seen_attributes.to(x.dtype)  # [S, A]
        target = batch["target"]
        if ctx.epoch != self._epoch or self._xx is None:
            d, a = self.weight.shape
            self._xx = torch.zeros(d, d, dtype=torch.float64, device=x.device)
            self._xys = torch.zeros(d, a, dtype=torch.float64, device=x.device)
            self._seen = seen.double()
            self._epoch = ctx.epoch
        ys = 2.0 * seen[target] - seen.sum(dim=0)  # [B, A]: row i of Y S
        with torch.no_grad():
            self._xx += (x.t() @ x).double()
            self._xys += (x.t() @ ys).double()  # type: ignore[operator]
            y = 2.0 * F.one_hot(target, seen.shape[0]).to(x.dtype) - 1.0  # [B, S]
            mse = ((x @ self.weight @ seen.t() - y) ** 2).mean()
        self._pending = True
        return {"total": mse.clone().requires_grad_(), "mse": mse}

    @torch.no_grad()
    def solve(self) -> None:
        """V = (X Xᵀ + 10^alpha I)⁻¹ (X Y S) (Sᵀ S + 10^gamma I)⁻¹ from the current sums (float64)."""
        assert self._xx is not None and self._xys is not None and self._seen is not None
        d, a = self.weight.shape
        eye_d = torch.eye(d, dtype=torch.float64, device=self._xx.device)
        eye_a = torch.eye(a, dtype=torch.float64, device=self._xx.device)
        lhs = self._xx + 10.0**self.alpha * eye_d  # symmetric positive definite: Cholesky (half an LU's cost)
        factor, info = torch.linalg.cholesky_ex(lhs)
        left = torch.cholesky_solve(self._xys, factor) if info.item() == 0 else torch.linalg.solve(lhs, self._xys)
        gram = self._seen.t() @ self._seen + 10.0**self.gamma * eye_a  # [A, A], symmetric
        self.weight.copy_(torch.linalg.solve(gram, left.t()).t().to(self.weight.dtype))
        self._pending = False


# --------------------------------------------------------------------------------------------- factories


Factory = Callable[..., ZslModel]


def _register(name: str) -> Callable[[Factory], Factory]:
    """Register one factory as the family ``name`` (features in, no images) and its ``<name>_test`` tiny variant,
    which is the same model: the classic heads are already small."""
    family = ModelFamily(name=name, tiny=f"{name}_test", transform=TINY_TRANSFORM, inputs="features")

    def deco(factory: Factory) -> Factory:
        family.variant(name)(factory)
        return family.variant(family.tiny)(factory)

    return deco


@_register("eszsl")
def eszsl(
    num_attributes: int, image_size: int, *, feature_dim: int = 2048, alpha: float = 0.0, gamma: float = 0.0
) -> ZslModel:
    """ESZSL, closed form; ``alpha``/``gamma``: log10 of the feature-side and attribute-side regularisers."""
    return ESZSL(num_attributes, feature_dim, alpha, gamma)


@_register("ale")
def ale(
    num_attributes: int, image_size: int, *, feature_dim: int = 2048, margin: float = 1.0, normalize: bool = True
) -> ZslModel:
    """ALE: bilinear compatibility with the rank-weighted hinge loss."""
    return Bilinear(num_attributes, feature_dim, "ale", margin, normalize)


@_register("devise")
def devise(
    num_attributes: int, image_size: int, *, feature_dim: int = 2048, margin: float = 0.1, normalize: bool = True
) -> ZslModel:
    """DeViSE: bilinear compatibility with the hinge rank loss summed over the violating classes."""
    return Bilinear(num_attributes, feature_dim, "devise", margin, normalize)


@_register("sje")
def sje(
    num_attributes: int, image_size: int, *, feature_dim: int = 2048, margin: float = 1.0, normalize: bool = True
) -> ZslModel:
    """SJE: bilinear compatibility with the structured hinge on the most violating class."""
    return Bilinear(num_attributes, feature_dim, "sje", margin, normalize)
