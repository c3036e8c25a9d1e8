"""FTRL-proximal logistic regression over hashed coordinates (McMahan et al., KDD 2013), in numpy."""

from __future__ import annotations

import numpy as np

from recfunnel.errors import ConfigError, DataError

LOGIT_BOUND = 35.0  # |logit| is clipped here before the sigmoid, so exp() never overflows


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) with x clipped to [-35, 35] (probabilities stay strictly inside (0, 1)).

    Example:
        >>> sigmoid(np.array([0.0, 1000.0])).round(6).tolist()
        [0.5, 1.0]
    """
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -LOGIT_BOUND, LOGIT_BOUND)))


class FTRLProximal:
    """Per-coordinate FTRL-proximal with L1 and L2, the optimizer of McMahan et al. (KDD 2013), Algorithm 1.

    The state is two float64 arrays over ``num_weights`` coordinates: ``z`` (the adjusted sum of
    gradients) and ``n`` (the sum of squared gradients). Weights are never stored; the weight of
    coordinate i is computed lazily from its state:
    ``w_i = 0 if |z_i| <= l1 else -(z_i - sign(z_i) l1) / ((beta + sqrt(n_i)) / alpha + l2)``.
    float64 rather than float32 because ``n`` sums squared gradients over the whole stream: after
    a few million rows a frequent coordinate (the bias) holds ``n`` ~ 1e6, where float32's spacing
    is 0.06 and every new squared gradient below that would be rounded away; float64 also makes a
    batch of one reproduce the paper's arithmetic. 16 bytes per coordinate: 64 MiB for 2**22.

    ``update`` takes a mini-batch. With one row it is exactly Algorithm 1. With B rows every
    prediction uses the weights from the start of the batch; each coordinate's gradients are
    summed over the batch (``g_i = sum_r (p_r - y_r) x_ri``) and the per-coordinate step is taken
    once with that sum, i.e. the batch is treated as one round whose loss is the sum of its rows'
    log losses. Only the coordinates present in the batch are read or written.

    Args:
        num_weights: Number of coordinates (hash space plus any bias coordinate).
        alpha: Learning-rate scale (alpha in the paper); larger learns faster.
        beta: Learning-rate smoothing (beta in the paper); 1.0 is usually fine.
        l1: L1 strength (lambda_1): weights with |z| <= l1 are exactly zero.
        l2: L2 strength (lambda_2).

    Example:
        >>> ftrl = FTRLProximal(8, alpha=0.1, l1=0.0, l2=0.0)
        >>> _ = ftrl.update(np.array([[1, 3]]), None, np.array([1.0]))
        >>> ftrl.weights(np.array([1, 3, 5])).round(4).tolist()
        [0.0333, 0.0333, 0.0]
    """

    def __init__(self, num_weights: int, *, alpha: float = 0.05, beta: float = 1.0, l1: float = 1.0,
                 l2: float = 1.0) -> None:
        check_hyperparameters(num_weights, alpha=alpha, beta=beta, l1=l1, l2=l2)
        self.num_weights = int(num_weights)
        self.alpha, self.beta, self.l1, self.l2 = float(alpha), float(beta), float(l1), float(l2)
        self.z = np.zeros(self.num_weights, dtype=np.float64)
        self.n = np.zeros(self.num_weights, dtype=np.float64)
        # scratch for de-duplicating a batch's coordinates without a sort; reset after every use
        self._slot = np.full(self.num_weights, -1, dtype=np.int32)

    def weights(self, indices: np.ndarray) -> np.ndarray:
        """The current weights of ``indices`` (any shape), computed from z and n; same shape, float64."""
        return self._weights(self.z[indices], self.n[indices])

    def _weights(self, z: np.ndarray, n: np.ndarray) -> np.ndarray:
        shrunk = z - np.sign(z) * self.l1
        w = -shrunk / ((self.beta + np.sqrt(n)) / self.alpha + self.l2)
        return np.where(np.abs(z) <= self.l1, 0.0, w)

    def predict_logits(self, indices: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Logits ``sum_f w[indices[r, f]] * values[r, f]`` per row, shape (B,); values default to 1."""
        indices = self._check_indices(indices)
        contributions = self.weights(indices)  # (B, F)
        if values is not None:
            contributions *= self._check_values(values, indices.shape)
        return contributions.sum(axis=1)

    def update(self, indices: np.ndarray, values: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
        """One FTRL-proximal step on a mini-batch; returns its logits from before the step, shape (B,).

        Args:
            indices: Coordinates of each row's features, int, shape (B, F); repeats are allowed
                (a coordinate listed twice in a row counts with the sum of its values).
            values: Feature values, shape (B, F), or None for all ones (one-hot hashed features).
            labels: 0/1 targets, shape (B,).

        Returns:
            Logits of the rows under the weights before this step (progressive validation).

        Raises:
            DataError: Shapes disagree or an index is outside [0, num_weights).
        """
        indices = self._check_indices(indices)
        labels = np.asarray(labels, dtype=np.float64)
        if labels.shape != indices.shape[:1]:
            raise DataError(f"labels must have shape ({indices.shape[0]},), one per row of indices; "
                            f"got {labels.shape}.")
        x = None if values is None else self._check_values(values, indices.shape)
        coords, inverse = self._unique(indices.ravel())  # (U,), (B*F,)
        z, n = self.z[coords], self.n[coords]
        w = self._weights(z, n)  # (U,)
        contributions = w[inverse].reshape(indices.shape)  # (B, F)
        if x is not None:
            contributions *= x
        logits = contributions.sum(axis=1)  # (B,)
        residual = sigmoid(logits) - labels  # d(log loss)/d(logit), (B,)
        per_entry = np.repeat(residual, indices.shape[1])  # (B*F,)
        if x is not None:
            per_entry *= x.ravel()
        g = np.bincount(inverse, weights=per_entry, minlength=len(coords))  # (U,)
        sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / self.alpha
        self.z[coords] = z + (g - sigma * w)
        self.n[coords] = n + g * g
        return logits

    def _unique(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct coordinates of ``flat`` and each entry's position among them, in O(len) without a sort."""
        positions = np.arange(len(flat), dtype=np.int32)
        self._slot[flat] = positions  # with repeats, one of the positions is kept per coordinate
        coords = flat[self._slot[flat] == positions]  # (U,)
        self._slot[coords] = np.arange(len(coords), dtype=np.int32)
        inverse = self._slot[flat]
        self._slot[coords] = -1
        return coords, inverse

    def sparsity(self) -> dict[str, float]:
        """Counts and shares of non-zero weights: over coordinates ever updated, and over all.

        A coordinate counts as touched once it received a non-zero gradient (n > 0); an
        untouched one has z = 0, hence weight 0.

        Example:
            >>> ftrl = FTRLProximal(10, l1=0.0)
            >>> _ = ftrl.update(np.array([[0, 1]]), None, np.array([1.0]))
            >>> ftrl.sparsity()
            {'touched': 2, 'nonzero': 2, 'nonzero_share_of_touched': 1.0, 'nonzero_share_of_all': 0.2}
        """
        touched = int(np.count_nonzero(self.n))
        nonzero = int(np.count_nonzero(np.abs(self.z) > self.l1))
        return {"touched": touched, "nonzero": nonzero,
                "nonzero_share_of_touched": nonzero / touched if touched else 0.0,
                "nonzero_share_of_all": nonzero / self.num_weights}

    def _check_indices(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
            raise DataError(f"indices must be a 2-D integer array (rows, features); got shape {indices.shape} "
                            f"and dtype {indices.dtype}.")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_weights):
            raise DataError(f"indices must lie in [0, {self.num_weights}); got values in "
                            f"[{indices.min()}, {indices.max()}]. Hash features modulo num_weights.")
        return indices

    @staticmethod
    def _check_values(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != shape:
            raise DataError(f"values must have the shape of indices, {shape}; got {values.shape}.")
        return values


def check_hyperparameters(num_weights: int, *, alpha: float, beta: float, l1: float, l2: float) -> None:
    """Raise a ConfigError naming the first out-of-range FTRL hyperparameter.

    Example:
        >>> check_hyperparameters(16, alpha=0.1, beta=1.0, l1=0.0, l2=-1.0)
        Traceback (most recent call last):
        recfunnel.errors.ConfigError: FTRL l2 must be >= 0; got -1.0.
    """
    if not isinstance(num_weights, (int, np.integer)) or num_weights < 1:
        raise ConfigError(f"num_weights must be a positive integer; got {num_weights!r}.")
    if not alpha > 0:
        raise ConfigError(f"FTRL alpha must be > 0 (it scales every step); got {alpha!r}.")
    for name, value in (("beta", beta), ("l1", l1), ("l2", l2)):
        if not value >= 0:
            raise ConfigError(f"FTRL {name} must be >= 0; got {value!r}.")
