"""Sample-quality metrics on the shipped classifier's 128-d penultimate features and class probabilities.

All arithmetic is float64 NumPy: these are statistics over at most tens of thousands of vectors, and
the FID's matrix square root needs the precision.

  FID     Heusel et al. 2017: ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2).
  KID     Binkowski et al. 2018: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean and std over
          random subsets.
  score   the Inception score of Salimans et al. 2016 with our classifier: exp E_x KL(p(y|x) || p(y)).
  P / R   improved precision and recall, Kynkaanniemi et al. 2019, k = 3 nearest neighbours.
  coverage  histogram of predicted classes, how many classes it covers, and its KL to uniform.
"""

import numpy as np

# Rows per block of pairwise distances: CHUNK x N float64, 10 MB at N = 10,000. Each block's
# values do not depend on it; smaller blocks lower an evaluation's peak memory, and 125 rows are
# no slower than larger ones (docs/performance.md).
CHUNK = 125


def gaussian_statistics(features):
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def symmetric_sqrt(matrix):
    """Square root of a symmetric PSD matrix by its eigendecomposition (negative round-off -> 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), and the right-hand matrix is symmetric PSD, so
    two symmetric eigendecompositions replace a general (and unstable) sqrtm.
    """
    sqrt1 = symmetric_sqrt(sigma1)
    middle = sqrt1 @ sigma2 @ sqrt1
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def kernel_sum(x, y, without_diagonal=False):
    """The sum of k(x_i, y_j) = (x_i.y_j / d + 1)^3 over every pair; `without_diagonal`: over
    i != j (x and y then the same set). The cube's sum is one BLAS dot of base^2 with base, and
    1/d goes into the small operand, so no pass makes the cubed matrix; its summation order is
    not the naive sum's, so the two agree to float rounding."""
    base = (x / x.shape[1]) @ y.T
    base += 1.0
    total = float(np.vdot(base * base, base))
    if without_diagonal:
        diagonal = np.diagonal(base)
        total -= float(np.sum(diagonal * diagonal * diagonal))
    return total


def within_set_term(x):
    """MMD^2's mean kernel value between distinct points of one set (x's own term)."""
    m = len(x)
    return kernel_sum(x, x, without_diagonal=True) / (m * (m - 1))


def mmd2_unbiased(x, y, x_term=None):
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the cubic polynomial kernel. `x_term`:
    within_set_term(x), when the caller has it already."""
    x_term = within_set_term(x) if x_term is None else x_term
    return float(x_term + within_set_term(y) - 2 * kernel_sum(x, y) / (len(x) * len(y)))


class KIDSubsets:
    """The random subsets that `kid` compares, with the first set's own kernel terms: a fixed
    reference set is compared with many generated sets of one size, and its share of the work
    (a third) is then done once. Built lazily for the sizes it meets."""

    def __init__(self, features_a, num_subsets=100, subset_size=1000, seed=0):
        self.a = np.asarray(features_a, np.float64)
        self.num_subsets, self.subset_size, self.seed = num_subsets, subset_size, seed
        self._known_terms = {}
        self._by_size = {}

    def keep_terms(self, size_b, terms):
        """Uses `terms`, reference_terms(size_b) of an earlier instance on the same set and
        settings (a cache on disk), instead of computing them."""
        expected = 0 if self.whole_sets(size_b) else self.num_subsets
        if len(terms) != expected:
            raise ValueError(f"expected {expected} reference terms, got {len(terms)}")
        self._by_size.pop(size_b, None)
        self._known_terms[size_b] = np.asarray(terms, np.float64)

    def draws(self, size_b):
        """[(indices into a, indices into b, a's term)] for generated sets of size_b points."""
        if size_b not in self._by_size:
            size = min(self.subset_size, len(self.a), size_b)
            rng = np.random.default_rng(self.seed)
            known = self._known_terms.get(size_b)
            draws = []
            for i in range(self.num_subsets):
                a_indices = rng.choice(len(self.a), size, replace=False)
                b_indices = rng.choice(size_b, size, replace=False)
                term = (float(known[i]) if known is not None
                        else within_set_term(self.a[a_indices]))
                draws.append((a_indices, b_indices, term))
            self._by_size[size_b] = draws
        return self._by_size[size_b]

    def whole_sets(self, size_b):
        """Whether sets of size_b are compared whole, once, rather than by subsets."""
        return min(self.subset_size, len(self.a), size_b) == len(self.a) == size_b

    def reference_terms(self, size_b):
        """The first set's own term of each subset drawn for generated sets of size_b points
        (none when compared whole): a third of KID's work, fixed for a fixed reference, and
        what `keep_terms` takes."""
        if self.whole_sets(size_b):
            return np.zeros(0)
        return np.array([term for _, _, term in self.draws(size_b)], np.float64)

    def kid(self, features_b):
        b = np.asarray(features_b, np.float64)
        if self.whole_sets(len(b)):
            return mmd2_unbiased(self.a, b), 0.0
        values = [mmd2_unbiased(self.a[a_indices], b[b_indices], a_term)
                  for a_indices, b_indices, a_term in self.draws(len(b))]
        return float(np.mean(values)), float(np.std(values))


def kid(features_a, features_b, num_subsets=100, subset_size=1000, seed=0):
    """(mean, std) of the unbiased MMD^2 over random subsets (without replacement within one).

    When the subsets are the whole of both sets (as with at most subset_size samples), every
    subset is a permutation of them, on which MMD^2 does not depend: it is computed once, std 0.
    """
    return KIDSubsets(features_a, num_subsets, subset_size, seed).kid(features_b)


def classifier_score(probs, eps=1e-12):
    """exp(E_x KL(p(y|x) || p(y))), p(y) the mean prediction: 1 (no information) to K classes."""
    probs = np.asarray(probs, np.float64)
    marginal = probs.mean(axis=0)
    kl = np.sum(probs * (np.log(probs + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(kl.mean()))


def squared_norms(x):
    return np.sum(x * x, 1)


def _distance_blocks(a, b):
    """Yields (start, squared distances from rows start:start + CHUNK of `a` to every row of `b`):
    |a_i|^2 + |b_j|^2 - 2 a_i.b_j, slightly negative for near-duplicates (callers clip what they
    keep). Each set's squared norms are computed once rather than once a block, the -2 goes into
    the matmul's small operand (exact: a power of two), and the two block buffers are reused, so
    a block costs its matmul and two passes instead of five: 0.79 -> 0.48 s for 10,000 points'
    radii, with every value bit-identical to the formula's direct NumPy spelling. Each block is a
    view of the buffers, valid until the next one is yielded."""
    a_norms = squared_norms(a)
    b_norms = a_norms if b is a else squared_norms(b)
    total_buffer = np.empty((CHUNK, len(b)))
    product_buffer = np.empty((CHUNK, len(b)))
    for start in range(0, len(a), CHUNK):
        block = a[start:start + CHUNK]
        rows = len(block)
        total = np.add(a_norms[start:start + rows, None], b_norms[None, :],
                       out=total_buffer[:rows])
        total += np.matmul(-2.0 * block, b.T, out=product_buffer[:rows])
        yield start, total


def _kth_smallest(rows, k):
    """Each row's k-th smallest value (0-based, with ties counted), taken by removing the row's
    minimum k times: a pass of argmin for each, about ten times faster than np.partition's
    selection for k = 3 over 10,000 columns, and the same value, since it is an element of the
    row. Overwrites `rows`. Non-finite rows go to np.partition, whose order puts NaN last."""
    if not np.all(np.isfinite(rows)):
        rows.partition(k, axis=1)
        return rows[:, k].copy()
    row_index = np.arange(len(rows))
    for _ in range(k):
        rows[row_index, np.argmin(rows, axis=1)] = np.inf
    return np.min(rows, axis=1)


def knn_squared_radii(features, k=3):
    """Squared distance from each point to its k-th nearest neighbour in the set, itself excluded."""
    features = np.asarray(features, np.float64)
    radii = np.empty(len(features))
    for start, d2 in _distance_blocks(features, features):
        # The smallest value of a row is the point itself (distance about 0), so its k-th
        # neighbour is the row's k-th smallest counting from 0. Clipping at 0 after the
        # selection keeps the same order statistic.
        radii[start:start + len(d2)] = np.maximum(_kth_smallest(d2, k), 0.0)
    return radii


def precision_recall(real_features, fake_features, k=3, real_radii=None):
    """Improved precision (fakes inside the real manifold) and recall (reals inside the fake one).
    `real_radii`: knn_squared_radii(real_features, k), when the caller keeps them (a fixed
    reference set). The distances between the two sets are computed once, for both; they are
    compared unclipped, which decides the same as clipped since the radii are at least 0."""
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if real_radii is None:
        real_radii = knn_squared_radii(real, k)
    fake_radii = knn_squared_radii(fake, k)
    fakes_inside = 0
    reals_inside = np.zeros(len(real), bool)
    for start, d2 in _distance_blocks(fake, real):
        fakes_inside += int(np.sum(np.any(d2 <= real_radii[None, :], axis=1)))
        reals_inside |= np.any(d2 <= fake_radii[start:start + len(d2), None], axis=0)
    return fakes_inside / len(fake), float(np.mean(reals_inside))


def class_coverage(probs, num_classes=10):
    """Histogram of argmax classes (fractions), the number of classes holding at least a tenth of
    their uniform share (so a handful of stray predictions do not count as coverage), and the KL
    divergence of the histogram from uniform (0 when balanced, log K when one class only)."""
    predicted = np.argmax(np.asarray(probs), axis=1)
    histogram = np.bincount(predicted, minlength=num_classes) / len(predicted)
    covered = int(np.sum(histogram >= 0.1 / num_classes))
    nonzero = histogram[histogram > 0]
    kl_to_uniform = float(np.sum(nonzero * np.log(nonzero * num_classes)))
    return histogram, covered, kl_to_uniform
