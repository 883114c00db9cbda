"""Split search for ``betavae.metrics.gbt``: histogram scan plus an exact search inside bins.

For every node of a tree level, Friedman's (2001, eq. 35) improvement of every bin edge of every
feature comes from prefix sums of the node's gradient and count histograms; the best features
then get an exact search, over the node's own samples, inside the few bins where binning loses
most against scikit-learn's search over every midpoint (``refine``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from betavae.metrics._gbt_bins import Bins, pairs

# A split must improve the squared error by more than this per sample (sklearn's EPSILON: a
# node whose impurity is at most it stays a leaf).
_EPSILON = float(np.finfo(np.float64).eps)
# Prefix sums over bins: np.cumsum below this many values per bin, an in-place loop above.
_LOOP_CUMSUM_MIN = 1024
# Exact search inside bins for this many of each node's best features (the default).
REFINE_FEATURES = 2


def prefix_sums(hist: np.ndarray) -> np.ndarray:
    """Cumulative sums over the bin axis (0) of ``[B, d, m]``, in place."""
    if hist[0].size < _LOOP_CUMSUM_MIN:
        return np.cumsum(hist, axis=0, out=hist)
    for b in range(1, hist.shape[0]):  # faster than np.cumsum along a leading axis
        np.add(hist[b], hist[b - 1], out=hist[b])
    return hist


@dataclass(frozen=True)
class Splits:
    """Splits of the m node columns of one level of the T trees of a stage.

    Column ``c`` is node ``c // T`` of tree ``c % T``; its children are columns ``c`` (the
    smaller) and ``c + m`` (the larger) of the next level. A sample goes right when its atom
    rank on ``feature`` exceeds ``last_rank`` (for new data: its value exceeds ``threshold``).

    Attributes:
        feature: ``[m]`` split feature (0 where ``split`` is False).
        last_rank: ``[m]`` rank of the last atom sent left (int32 max where ``split`` is False).
        threshold: ``[m]`` float threshold (+inf where ``split`` is False).
        right_smaller: ``[m]`` bool (True where ``split`` is False: the right child is empty).
        decrease: ``[m]`` weighted impurity decrease ``N·var − N_L·var_L − N_R·var_R``.
        split: ``[m]`` whether the node splits.
    """

    feature: np.ndarray
    last_rank: np.ndarray
    threshold: np.ndarray
    right_smaller: np.ndarray
    decrease: np.ndarray
    split: np.ndarray

    def to_larger_keys(self, n_features: int) -> tuple[np.ndarray, np.ndarray]:
        """``(feature2, rank2)``: a sample goes to the larger child iff ``ranks[feature2] > rank2``.

        ``ranks`` holds the negated ranks in columns ``d..2d-1``, so "goes left" (``rank ≤ j``,
        i.e. ``−rank > −j−1``) is the same comparison.
        """
        feature2 = self.feature + n_features * self.right_smaller
        rank2 = np.where(self.right_smaller, -self.last_rank - 1, self.last_rank)
        return feature2.astype(np.intp), rank2.astype(np.int32)

    def to_larger_thresholds(self, n_features: int) -> tuple[np.ndarray, np.ndarray]:
        """``(feature2, threshold2)``: the same test on ``[X, −X]`` values for new data."""
        flipped = np.nextafter(-self.threshold, -np.inf)  # −x ≥ −t  ⇔  −x > nextafter(−t)
        threshold2 = np.where(self.right_smaller, flipped, self.threshold)
        return self.to_larger_keys(n_features)[0], threshold2


def _improvements(
    s_cum: np.ndarray, n_cum: np.ndarray, bins: Bins, root: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Friedman's improvement ``diff² / (N_L·N_R)`` of every split, ``[B, d, m]``.

    ``diff = S_L − N_L·S/N`` (``S`` sums of gradients, ``N`` counts, over bins ``≤ b``): the
    squared-error decrease of the split is ``N`` times the improvement (Friedman 2001, eq. 35).
    Splits with an empty side come out ≈ 0 (see ``pairs``). Also returns each node's ``N``
    ``[m]``.
    """
    n_total = n_cum[-1, 0]
    mean = s_cum[-1, 0] / np.maximum(n_total, 1.0)
    proxy = n_cum * mean
    np.subtract(s_cum, proxy, out=proxy)
    np.square(proxy, out=proxy)
    if root:
        proxy *= bins.root_inverse
    else:
        proxy /= pairs(n_cum, n_total)
    return proxy, n_total


@dataclass(frozen=True)
class Refined:
    """Best split strictly inside a bin, per candidate (feature, node column), ``[r, m]`` each.

    Attributes:
        improvement: Friedman's improvement (−inf where there is none).
        last_rank: rank of the last atom sent left.
        threshold: sklearn's midpoint between the node's neighbouring values.
        n_left: samples sent left.
    """

    improvement: np.ndarray
    last_rank: np.ndarray
    threshold: np.ndarray
    n_left: np.ndarray


def refine(
    proxy: np.ndarray,
    s_cum: np.ndarray,
    n_cum: np.ndarray,
    candidates: np.ndarray,
    bins: Bins,
    column: np.ndarray,
    neg_grad: np.ndarray,
) -> Refined:
    """Exact splits inside the bins where binning loses most against sklearn's exact search.

    For each candidate feature ``candidates`` ``[r, m]`` of each node column, scans the node's
    samples, in sorted order, inside three windows: the two bins on either side of the best
    bin edge, and the node's first and last non-empty bins (where sklearn isolates a few
    extreme samples). ``proxy``, ``s_cum``, ``n_cum`` ``[B, d, m]`` as in ``best_splits``
    (``n_cum`` may be the root's ``[B, d, 1]``); ``column``, ``neg_grad`` ``[n, T]``.
    """
    n_bins = proxy.shape[0]
    r, m = candidates.shape
    cols = np.broadcast_to(np.arange(m), (r, m))
    count_cols = cols if n_cum.shape[2] > 1 else np.zeros_like(cols)
    n_total = n_cum[-1, 0][count_cols]
    node_cum = n_cum[:, candidates, count_cols]  # [B, r, m]
    edge = proxy[:, candidates, cols].argmax(axis=0)
    first = (node_cum > 0).argmax(axis=0)
    last = (node_cum >= n_total).argmax(axis=0)
    lo = np.stack([edge, first, last])  # [3, r, m]: first and last bin of each window
    hi = np.stack([np.minimum(edge + 1, n_bins - 1), first, last])
    feature = np.broadcast_to(candidates, lo.shape)
    column_id = np.broadcast_to(cols, lo.shape)
    count_id = np.broadcast_to(count_cols, lo.shape)
    before = np.where(lo > 0, n_cum[np.maximum(lo - 1, 0), feature, count_id], 0.0)
    in_bins = n_cum[hi, feature, count_id] - before
    one_bin = n_cum[lo, feature, count_id] - before
    # An inside split needs two of the node's samples in one bin of the window.
    keep = np.flatnonzero((np.maximum(one_bin, in_bins - one_bin) >= 2).ravel())
    improvement = np.full(lo.size, -np.inf)
    last_rank = np.zeros(lo.size, dtype=np.int64)
    threshold = np.full(lo.size, np.inf)
    n_left = np.zeros(lo.size)
    if keep.size:
        lo_k, feature_k = lo.ravel()[keep], feature.ravel()[keep]
        column_k = column_id.ravel()[keep]
        base_s = np.where(lo_k > 0, s_cum[np.maximum(lo_k - 1, 0), feature_k, column_k], 0.0)
        start = bins.bin_start[feature_k, lo_k]
        end = np.minimum(bins.bin_start[feature_k, hi.ravel()[keep] + 1], start + bins.window)
        root = n_cum.shape[2] == 1
        found = _scan_windows(
            bins, None if root else column, neg_grad, feature_k, column_k, start, end,
            base_s, before.ravel()[keep], s_cum[-1, 0][column_k], n_total.ravel()[keep % (r * m)],
        )  # fmt: skip
        improvement[keep], last_rank[keep], threshold[keep], n_left[keep] = found
    window = improvement.reshape(3, r, m).argmax(axis=0)
    pick = np.ravel_multi_index((window, *np.indices((r, m))), (3, r, m))
    return Refined(
        improvement[pick], last_rank[pick], threshold[pick], n_left[pick]
    )  # fmt: skip


def _scan_windows(
    bins: Bins,
    column: np.ndarray | None,
    neg_grad: np.ndarray,
    feature: np.ndarray,
    column_id: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    base_s: np.ndarray,
    base_n: np.ndarray,
    s_total: np.ndarray,
    n_total: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best split strictly inside a bin in each of k windows of sorted positions.

    Window ``w`` scans positions ``start[w]:end[w]`` of ``feature[w]``'s sorted order, keeping
    the samples of node ``column_id[w]``; ``base_s``, ``base_n`` are the node's gradient sum
    and count before the window, ``s_total``, ``n_total`` the node's. Returns, ``[k]`` each,
    the improvement (−inf if none), last rank sent left, threshold and count sent left.
    ``column`` None means the root, where every sample is in its tree's node.
    """
    n, n_trees = neg_grad.shape
    steps = np.arange(int((end - start).max()))
    flat = (feature * n)[:, None] + np.minimum(start[:, None] + steps, n - 1)
    sample = bins.order.reshape(-1).take(flat) * n_trees + (column_id % n_trees)[:, None]
    in_node = steps < (end - start)[:, None]
    if column is not None:
        in_node &= column.reshape(-1).take(sample) == column_id[:, None]
    grad = np.where(in_node, neg_grad.reshape(-1).take(sample), 0.0)
    s_left = np.cumsum(grad, axis=1)
    s_left += base_s[:, None]
    n_left = np.cumsum(in_node, axis=1) + base_n[:, None]
    rank = bins.sorted_rank.reshape(-1).take(flat)
    # Rank of the next sample of the node: the split must fall between two atoms of one bin
    # (splits between bins are the histogram's).
    big_rank = np.iinfo(np.int32).max
    later = np.minimum.accumulate(np.where(in_node, rank, big_rank)[:, ::-1], axis=1)[:, ::-1]
    next_rank = np.full_like(later, big_rank)
    next_rank[:, :-1] = later[:, 1:]
    ok = in_node & (next_rank > rank) & (next_rank <= bins.sorted_bin_end.reshape(-1).take(flat))
    diff = s_left - n_left * (s_total / np.maximum(n_total, 1.0))[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(ok, np.square(diff) / (n_left * (n_total[:, None] - n_left)), -np.inf)
    pos = score.argmax(axis=1)
    rows = np.arange(pos.size)
    after = in_node & (steps > pos[:, None])
    left_value = bins.sorted_value.reshape(-1).take(flat[rows, pos])
    right_value = bins.sorted_value.reshape(-1).take(flat[rows, after.argmax(axis=1)])
    threshold = left_value / 2.0 + right_value / 2.0
    threshold = np.where(threshold == right_value, left_value, threshold)
    return score[rows, pos], rank[rows, pos], threshold, n_left[rows, pos]


def best_splits(
    s_cum: np.ndarray,
    n_cum: np.ndarray | None,
    alive: np.ndarray,
    bins: Bins,
    rng: np.random.Generator,
    column: np.ndarray,
    neg_grad: np.ndarray,
    refine_features: int = REFINE_FEATURES,
) -> Splits:
    """Best split of each node column from the ``[B, d, m]`` prefix sums of its histograms.

    ``s_cum``, ``n_cum``: sums of gradients and counts over bins ``≤ b``; ``n_cum`` None
    means the root (counts from ``bins``). The node's ``refine_features`` best features also get
    an exact search inside a few bins (``refine``; ``column``, ``neg_grad`` ``[n, T]``); 0 keeps
    the histogram's splits only. Among equal bins of a feature the lowest wins; among equally
    good features, a random one. A node stays a leaf if no split with both sides non-empty
    improves the squared error by more than machine ε per sample (sklearn: if its impurity is ≤
    ε, which implies it, or it has < 2 samples), or if ``alive`` ``[m]`` is False (its parent
    did not split).
    """
    root = n_cum is None
    if root:
        n_cum = bins.count_cum
    proxy, n_total = _improvements(s_cum, n_cum, bins, root)
    d, m = proxy.shape[1:]
    cols = np.arange(m)
    count_col = 0 if root else cols
    score = proxy.max(axis=0)  # [d, m]
    candidates = np.argsort(-score, axis=0, kind="stable")[: min(refine_features, d)]
    if candidates.size:
        refined = refine(proxy, s_cum, n_cum, candidates, bins, column, neg_grad)
        better = refined.improvement > score[candidates, cols]
        score[candidates, cols] = np.maximum(score[candidates, cols], refined.improvement)
    best = score.max(axis=0)
    ties = score == best
    feature = np.where(ties, rng.random((d, m)), -1.0).argmax(axis=0)

    last_left = proxy[:, feature, cols].argmax(axis=0)
    n_left = n_cum[last_left, feature, count_col]
    node_counts = np.diff(n_cum[:, feature, count_col], axis=0, prepend=0.0)  # [B, m]
    threshold = _thresholds(node_counts, feature, last_left, bins)
    last_rank = bins.last_atom[feature, last_left]
    if candidates.size:  # where the winner is a refined split, take its details
        use = better & (candidates == feature)
        which = use.argmax(axis=0)
        use = use.any(axis=0)
        n_left = np.where(use, refined.n_left[which, cols], n_left)
        threshold = np.where(use, refined.threshold[which, cols], threshold)
        last_rank = np.where(use, refined.last_rank[which, cols], last_rank)

    split = alive & (best > _EPSILON) & (n_left >= 1) & (n_left < n_total)
    return Splits(
        feature=np.where(split, feature, 0),
        last_rank=np.where(split, last_rank, np.iinfo(np.int32).max),
        threshold=np.where(split, threshold, np.inf),
        right_smaller=~split | (2 * n_left >= n_total),
        decrease=n_total * np.where(split, best, 0.0),
        split=split,
    )


def _thresholds(
    node_counts: np.ndarray, feature: np.ndarray, last_left: np.ndarray, bins: Bins
) -> np.ndarray:
    """sklearn's threshold, ``x_left_max / 2 + x_right_min / 2``, of each column's split.

    ``node_counts`` ``[B, m]`` is each node's histogram on its split feature; the right side
    starts at the first non-empty bin after ``last_left``.
    """
    n_bins = node_counts.shape[0]
    later = (np.arange(n_bins)[:, None] > last_left) & (node_counts > 0)
    first_right = np.where(later.any(axis=0), later.argmax(axis=0), n_bins - 1)
    left_max = bins.upper[feature, last_left]
    right_min = bins.lower[feature, first_right]
    threshold = left_max / 2.0 + right_min / 2.0
    # As sklearn does: if rounding lands the midpoint on the right value, use the left one.
    return np.where(threshold == right_min, left_max, threshold)
