"""Matrix factorization on implicit feedback: ALS and BPR (both trained by implicit)."""

from __future__ import annotations

import numpy as np

from personalize.errors import ParameterError
from personalize.recommenders.base import Recommender
from personalize.recommenders.fallback import DEFAULT_FALLBACK
from personalize.recommenders.history import Batch
from personalize.recommenders.topk import NEG


class _FactorModel(Recommender):
    """Shared scoring for factor models: score = user_factor . item_factor.

    Customers with live purchases (and sessions) get a factor by the ALS
    least-squares fold-in against the fixed item factors (what implicit's
    ``recalculate_user`` does), computed per call from their history: the
    fitted factors never change. The fold-in also serves ``explain`` (the
    contribution of past item j to item i is ``(W_u^-1 y_i) . y_j * c_uj``,
    Hu, Koren & Volinsky 2008, section 5).
    """

    def __init__(self, *, factors: int, iterations: int, regularization: float, random_state: int | None,
                 num_threads: int, fallback, trending_days: float, session_neighbors: int) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.random_state = random_state
        self.num_threads = num_threads

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_positive(self.factors, "factors", integer=True)
        _check_positive(self.iterations, "iterations", integer=True)
        if not (isinstance(self.regularization, (int, float)) and self.regularization >= 0):
            raise ParameterError(f"regularization must be a number >= 0, got {self.regularization!r}")

    def _confidence(self, w: np.ndarray) -> np.ndarray:
        return np.ones_like(np.asarray(w, dtype=np.float64))

    def _fold_reg(self) -> float:
        return float(self.regularization)

    def _post_state(self) -> None:
        super()._post_state()
        # derived from the item factors on first use (a fold-in, a similar-items query), not on load: a
        # worker swapping bundles under load serves the new one sooner (``_gram``, ``_unit_items``)
        self._YtY: np.ndarray | None = None
        self._unit: tuple[np.ndarray, np.ndarray] | None = None
        self._yt_cache: dict[int, np.ndarray] = {}

    def _gram(self) -> np.ndarray:
        """``Y^T Y`` of the item factors, in float64 (the fold-in's constant part)."""
        if self._YtY is None:
            Y = self.item_factors_
            g = np.zeros((Y.shape[1], Y.shape[1]))
            for s in range(0, len(Y), 16384):  # float64 a block at a time, not a float64 copy of Y
                blk = Y[s:s + 16384].astype(np.float64)
                g += blk.T @ blk
            self._YtY = g
        return self._YtY

    def _unit_items(self) -> tuple[np.ndarray, np.ndarray]:
        """(item factors scaled to unit length (zero rows stay zero), which rows are non-zero)."""
        if self._unit is None:
            norms = np.linalg.norm(self.item_factors_, axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                unit = (self.item_factors_ / norms[:, None]).astype(np.float32)
            unit[norms == 0] = 0
            self._unit = (unit, norms > 0)
        return self._unit

    def _yt(self, cols, width: int) -> np.ndarray:
        if cols is None:
            yt = self._yt_cache.get(width)
            if yt is None:
                yt = np.zeros((self.item_factors_.shape[1], width), dtype=np.float32)
                yt[:, :self.n_items] = self.item_factors_.T
                self._yt_cache = {width: yt}
            return yt
        yt = np.zeros((self.item_factors_.shape[1], width), dtype=np.float32)
        yt[:, :len(cols)] = self.item_factors_[cols].T
        return yt

    def _user_vectors(self, batch: Batch) -> np.ndarray:
        """Fitted factors, or the fold-in of the live history for customers with live events."""
        c = batch.cidx
        if not batch.events:
            return self.user_factors_[c]
        U = self.user_factors_[np.maximum(c, 0)]
        for p in batch.events:
            U[p] = self._fold_in(*batch.history(p))
        return U

    def _make_scorer(self, query, cols, width):
        YT = self._yt(cols, width)

        def score(batch, out, colpos):
            np.matmul(self._user_vectors(batch), YT, out=out)

        return score

    def _system(self, hi: np.ndarray, hw: np.ndarray):
        c = self._confidence(hw)
        Yu = self.item_factors_[hi].astype(np.float64)
        f = Yu.shape[1]
        A = self._gram() + self._fold_reg() * np.eye(f) + (Yu.T * (c - 1.0)) @ Yu
        return A, Yu, c

    def _fold_in(self, hi: np.ndarray, hw: np.ndarray) -> np.ndarray:
        A, Yu, c = self._system(hi, hw)
        return np.linalg.solve(A, Yu.T @ c).astype(np.float32)

    def _session_scores(self, hi, hw):
        return self.item_factors_ @ self._fold_in(hi, hw)

    def _similar_scores(self, iidx):
        unit, ok = self._unit_items()
        if not ok[iidx]:
            return None, self.source
        s = unit @ unit[iidx]
        s[~ok] = NEG
        return s, self.source

    def _explain_contrib(self, batch, iidx, hi, hw):
        A, Yu, c = self._system(hi, hw)
        weighted = np.linalg.solve(A, self.item_factors_[iidx].astype(np.float64))
        return (Yu @ weighted) * c

    def to_arrays(self):
        return {**super().to_arrays(), "model_user_factors": self.user_factors_,
                "model_item_factors": self.item_factors_}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.user_factors_ = np.ascontiguousarray(a["model_user_factors"])
        self.item_factors_ = np.ascontiguousarray(a["model_item_factors"])


def _check_positive(value, name: str, integer: bool = False) -> None:
    types = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, types) or value <= 0:
        raise ParameterError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")


class ALS(_FactorModel):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) trained by implicit.

    The confidence of a purchased item is ``1 + alpha * log1p(count)``
    (``confidence="log1p"``) or ``1 + alpha * count`` (``"linear"``), where
    count = number of purchase lines of that item by that customer.
    """

    kind = "als"

    def __init__(self, *, factors: int = 64, iterations: int = 15, regularization: float = 5.0,
                 alpha: float = 2.0, confidence: str = "log1p", use_cg: bool = True, random_state: int | None = 0,
                 num_threads: int = 0, fallback=DEFAULT_FALLBACK, trending_days: float = 30.0,
                 session_neighbors: int = 20) -> None:
        super().__init__(factors=factors, iterations=iterations, regularization=regularization,
                         random_state=random_state, num_threads=num_threads, fallback=fallback,
                         trending_days=trending_days, session_neighbors=session_neighbors)
        self.alpha = alpha
        self.confidence = confidence
        self.use_cg = use_cg

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_positive(self.alpha, "alpha")
        if self.confidence not in ("log1p", "linear"):
            raise ParameterError(f"confidence must be 'log1p' or 'linear', got {self.confidence!r}")

    def _confidence(self, w):
        w = np.asarray(w, dtype=np.float64)
        return 1.0 + self.alpha * (np.log1p(w) if self.confidence == "log1p" else w)

    def _fit(self, ds, X) -> None:
        from implicit.cpu.als import AlternatingLeastSquares  # heavy import, only when fitting
        C = X.tocsr().astype(np.float32, copy=True)
        C.data = self._confidence(C.data).astype(np.float32)
        model = AlternatingLeastSquares(factors=int(self.factors), regularization=float(self.regularization),
                                        alpha=1.0, iterations=int(self.iterations), use_cg=bool(self.use_cg),
                                        random_state=self.random_state, num_threads=int(self.num_threads))
        model.fit(C, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)


class BPR(_FactorModel):
    """Bayesian Personalized Ranking (Rendle et al. 2009) trained by implicit on who bought what.

    implicit appends a bias column (items: learned bias, customers: 1), kept
    as is. New or updated customers are folded in by least squares.
    """

    kind = "bpr"

    def __init__(self, *, factors: int = 64, iterations: int = 100, learning_rate: float = 0.01,
                 regularization: float = 0.01, verify_negative_samples: bool = True, random_state: int | None = 0,
                 num_threads: int = 0, fallback=DEFAULT_FALLBACK, trending_days: float = 30.0,
                 session_neighbors: int = 20) -> None:
        super().__init__(factors=factors, iterations=iterations, regularization=regularization,
                         random_state=random_state, num_threads=num_threads, fallback=fallback,
                         trending_days=trending_days, session_neighbors=session_neighbors)
        self.learning_rate = learning_rate
        self.verify_negative_samples = verify_negative_samples

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_positive(self.learning_rate, "learning_rate")

    def _fold_reg(self) -> float:
        return max(float(self.regularization), 1e-3)

    def _fit(self, ds, X) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking  # heavy import, only when fitting
        B = X.tocsr().astype(np.float32, copy=True)
        B.data = np.ones_like(B.data)
        model = BayesianPersonalizedRanking(factors=int(self.factors), learning_rate=float(self.learning_rate),
                                            regularization=float(self.regularization),
                                            iterations=int(self.iterations),
                                            verify_negative_samples=bool(self.verify_negative_samples),
                                            random_state=self.random_state, num_threads=int(self.num_threads))
        model.fit(B, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
