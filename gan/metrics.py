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

CHUNK = 1000  # rows per block of pairwise distances (CHUNK x N float64 in memory)


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


def polynomial_kernel(x, y):
    base = x @ y.T / x.shape[1] + 1.0
    return base * base * base  # two multiplies: ~10x faster than numpy's general power


def mmd2_unbiased(x, y):
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the cubic polynomial kernel."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                 + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) - 2 * k_xy.mean())


def kid(features_a, features_b, num_subsets=100, subset_size=1000, seed=0):
    """(mean, std) of the unbiased MMD^2 over random subsets (without replacement within one).

    When the subsets are the whole of both sets (as with at most subset_size samples), every
    subset is a permutation of them, on which MMD^2 does not depend: it is computed once, std 0.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    size = min(subset_size, len(a), len(b))
    if size == len(a) == len(b):
        return mmd2_unbiased(a, b), 0.0
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)],
                            b[rng.choice(len(b), size, replace=False)])
              for _ in range(num_subsets)]
    return float(np.mean(values)), float(np.std(values))


def classifier_score(probs, eps=1e-12):
    """exp(E_x KL(p(y|x) || p(y))), p(y) the mean prediction: 1 (no information) to K classes."""
    probs = np.asarray(probs, np.float64)
    marginal = probs.mean(axis=0)
    kl = np.sum(probs * (np.log(probs + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(kl.mean()))


def _squared_distances(a, b):
    return np.maximum(
        np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T, 0.0)


def knn_squared_radii(features, k=3):
    """Squared distance from each point to its k-th nearest neighbour in the set, itself excluded."""
    radii = np.empty(len(features))
    for start in range(0, len(features), CHUNK):
        d2 = _squared_distances(features[start:start + CHUNK], features)
        # Column 0 after partition is the point itself (distance 0); column k is its k-th neighbour.
        radii[start:start + CHUNK] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _fraction_inside_manifold(queries, manifold, squared_radii):
    """Fraction of queries within radius j of some manifold point j (compared squared)."""
    inside = 0
    for start in range(0, len(queries), CHUNK):
        d2 = _squared_distances(queries[start:start + CHUNK], manifold)
        inside += int(np.sum(np.any(d2 <= squared_radii[None, :], axis=1)))
    return inside / len(queries)


def precision_recall(real_features, fake_features, k=3):
    """Improved precision (fakes inside the real manifold) and recall (reals inside the fake one)."""
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    precision = _fraction_inside_manifold(fake, real, knn_squared_radii(real, k))
    recall = _fraction_inside_manifold(real, fake, knn_squared_radii(fake, k))
    return precision, recall


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
