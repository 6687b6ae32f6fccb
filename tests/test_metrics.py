import itertools

import numpy as np

from gan import metrics


def fid(features_a, features_b):
    return metrics.frechet_distance(*metrics.gaussian_statistics(features_a),
                                    *metrics.gaussian_statistics(features_b))

def random_spd(rng, dim):
    q = rng.normal(size=(dim, dim))
    return q @ q.T / dim + 0.1 * np.eye(dim)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 16))
    assert abs(fid(x, x)) < 1e-8


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    """For commuting (diagonal) covariances: ||m1 - m2||^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2."""
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    np.testing.assert_allclose(metrics.frechet_distance(m1, np.diag(s1), m2, np.diag(s2)), expected,
                               rtol=1e-10)


def test_frechet_distance_of_general_gaussians_matches_the_trace_formula():
    """Tr((S1 S2)^1/2) equals the sum of square roots of the (real, non-negative) eigenvalues of
    the non-symmetric S1 S2: an independent route to the same number."""
    rng = np.random.default_rng(2)
    for dim in (2, 5, 20):
        m1, m2 = rng.normal(size=dim), rng.normal(size=dim)
        s1, s2 = random_spd(rng, dim), random_spd(rng, dim)
        trace_sqrt = np.sum(np.sqrt(np.linalg.eigvals(s1 @ s2).real))
        expected = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
        np.testing.assert_allclose(metrics.frechet_distance(m1, s1, m2, s2), expected, rtol=1e-9)


def test_fid_from_samples_converges_to_the_gaussians_distance():
    rng = np.random.default_rng(3)
    m1, m2 = np.zeros(3), np.array([1.0, 0.0, -0.5])
    s1, s2 = random_spd(rng, 3), random_spd(rng, 3)
    a = rng.multivariate_normal(m1, s1, 200_000)
    b = rng.multivariate_normal(m2, s2, 200_000)
    np.testing.assert_allclose(fid(a, b), metrics.frechet_distance(m1, s1, m2, s2), rtol=0.02)


def test_symmetric_sqrt_squares_back():
    s = random_spd(np.random.default_rng(4), 7)
    root = metrics.symmetric_sqrt(s)
    np.testing.assert_allclose(root @ root, s, atol=1e-12)


def naive_mmd2(x, y):
    k = lambda a, b: (a @ b / len(a) + 1) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_the_naive_double_sum():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 4)), rng.normal(0.5, 1, size=(9, 4))
    np.testing.assert_allclose(metrics.mmd2_unbiased(x, y), naive_mmd2(x, y), rtol=1e-10)


def test_mmd2_matches_the_kernel_matrices_at_the_size_kid_uses():
    """At KID's subset size, against the formula written with whole kernel matrices."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(1000, 16)), rng.normal(0.2, 1.1, size=(900, 16))
    k_xx, k_yy, k_xy = ((a @ b.T / 16 + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    expected = ((k_xx.sum() - np.trace(k_xx)) / (1000 * 999)
                + (k_yy.sum() - np.trace(k_yy)) / (900 * 899) - 2 * k_xy.mean())
    np.testing.assert_allclose(metrics.mmd2_unbiased(x, y), expected, rtol=1e-9)


def test_kid_of_whole_sets_is_their_mmd2_whatever_the_order():
    """With as many samples as the subset size, each "subset" is a permutation of the sets."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(300, 8)), rng.normal(0.3, 1, size=(300, 8))
    mean, std = metrics.kid(x, y, num_subsets=10, subset_size=1000)
    assert std == 0.0
    for _ in range(3):
        permuted = metrics.mmd2_unbiased(x[rng.permutation(300)], y[rng.permutation(300)])
        np.testing.assert_allclose(mean, permuted, rtol=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(6)
    same_a, same_b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    mean, std = metrics.kid(same_a, same_b, num_subsets=50, subset_size=500)
    assert abs(mean) < 3 * std / np.sqrt(50) + 1e-3
    shifted = rng.normal(0.5, 1, size=(2000, 8))
    mean_shift, std_shift = metrics.kid(same_a, shifted, num_subsets=50, subset_size=500)
    assert mean_shift > 10 * std_shift / np.sqrt(50) and mean_shift > 0.05


def test_classifier_score_bounds():
    k = 10
    confident_balanced = np.eye(k)[np.arange(1000) % k]
    np.testing.assert_allclose(metrics.classifier_score(confident_balanced), k, rtol=1e-6)
    one_class = np.eye(k)[np.zeros(1000, int)]
    np.testing.assert_allclose(metrics.classifier_score(one_class), 1.0, rtol=1e-6)
    uninformative = np.full((1000, k), 1.0 / k)
    np.testing.assert_allclose(metrics.classifier_score(uninformative), 1.0, rtol=1e-9)
    # Confident on 5 of 10 classes: exp(log 5) = 5.
    five = np.eye(k)[np.arange(1000) % 5]
    np.testing.assert_allclose(metrics.classifier_score(five), 5.0, rtol=1e-6)


def naive_precision_recall(real, fake, k):
    def radii(s):
        return np.array([np.sort(np.linalg.norm(s - p, axis=1))[k] for p in s])

    def inside(queries, manifold, r):
        return np.mean([any(np.linalg.norm(q - m) <= rj for m, rj in zip(manifold, r)) for q in queries])

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def test_precision_recall_matches_the_definition():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(60, 3))
    fake = rng.normal(0.7, 0.6, size=(50, 3))
    got = metrics.precision_recall(real, fake, k=3)
    np.testing.assert_allclose(got, naive_precision_recall(real, fake, 3), rtol=1e-12)


def test_precision_recall_in_chunks_with_kept_reference_radii(monkeypatch):
    """Blocks of rows that do not divide the sets, and the reference's radii passed in (what
    the evaluator keeps between evaluations), give the definition's values."""
    monkeypatch.setattr(metrics, "CHUNK", 16)
    rng = np.random.default_rng(9)
    real = rng.normal(size=(60, 3))
    fake = rng.normal(0.5, 0.8, size=(50, 3))
    expected = naive_precision_recall(real, fake, 3)
    np.testing.assert_allclose(metrics.precision_recall(real, fake, k=3), expected, rtol=1e-12)
    radii = metrics.knn_squared_radii(real, 3)
    np.testing.assert_allclose(metrics.precision_recall(real, fake, k=3, real_radii=radii),
                               expected, rtol=1e-12)


def test_knn_radii_in_reused_blocks_are_the_sorted_distances(monkeypatch):
    """Blocks of 16 rows (the last one short) share two buffers: each block's radii must still be
    its own rows' k-th neighbour distance, squared, computed here point by point."""
    monkeypatch.setattr(metrics, "CHUNK", 16)
    rng = np.random.default_rng(12)
    points = rng.normal(2.0, 1.5, size=(70, 6))
    for k in (1, 3, 5):
        expected = [np.sort(np.sum((points - p) ** 2, axis=1))[k] for p in points]
        np.testing.assert_allclose(metrics.knn_squared_radii(points, k), expected, rtol=1e-10)


def test_knn_radii_count_duplicates_and_survive_a_non_finite_point():
    """Duplicated points are each other's neighbours at distance 0 (the selection removes one
    element at a time, so ties count), and a NaN point leaves the other points' radii to their
    finite neighbours, as np.sort (NaN last) ranks them."""
    rng = np.random.default_rng(13)
    points = rng.normal(size=(40, 5))
    points[1] = points[2] = points[3] = points[0]
    radii = metrics.knn_squared_radii(points, 3)
    assert radii[0] < 1e-12 and radii[1] < 1e-12 and radii[4] > 0.1  # rounding of |a|^2 - 2a.a
    points[7, 2] = np.nan
    radii = metrics.knn_squared_radii(points, 3)
    for i in (0, 4, 20):
        expected = np.sort(np.sum((points - points[i]) ** 2, axis=1))[3]
        np.testing.assert_allclose(radii[i], max(expected, 0.0), rtol=1e-10, atol=1e-12)
    assert np.isnan(radii[7])


def test_kid_subsets_kept_for_a_reference_give_kids_values():
    rng = np.random.default_rng(10)
    reference = rng.normal(size=(900, 8))
    kept = metrics.KIDSubsets(reference, num_subsets=5, subset_size=200, seed=3)
    for shift in (0.0, 0.3):
        generated = rng.normal(shift, 1, size=(700, 8))
        assert kept.kid(generated) == metrics.kid(reference, generated, num_subsets=5,
                                                  subset_size=200, seed=3)


def test_precision_recall_extremes():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(300, 4))
    assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
    far = real + 100.0
    assert metrics.precision_recall(real, far) == (0.0, 0.0)
    # A collapsed generator: all samples near one real point -> precise, but recall ~ 0.
    collapsed = real[0] + 1e-3 * rng.normal(size=(300, 4))
    precision, recall = metrics.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.05


def test_class_coverage():
    probs = np.eye(10)[np.array([0] * 100 + [1] * 60 + [2] * 38 + [3] * 2)]
    histogram, covered, kl = metrics.class_coverage(probs)
    np.testing.assert_allclose(histogram[:4], [0.5, 0.3, 0.19, 0.01])
    assert covered == 4  # 1% is a tenth of a class's uniform 10% share: it counts
    probs_rare = np.eye(10)[np.array([0] * 100 + [1] * 60 + [2] * 39 + [3] * 1)]
    assert metrics.class_coverage(probs_rare)[1] == 3  # 0.5% does not
    expected_kl = sum(p * np.log(p * 10) for p in (0.5, 0.3, 0.19, 0.01))
    np.testing.assert_allclose(kl, expected_kl, rtol=1e-12)
    balanced = np.eye(10)[np.arange(1000) % 10]
    assert metrics.class_coverage(balanced)[1:] == (10, 0.0)
    np.testing.assert_allclose(metrics.class_coverage(np.eye(10)[np.zeros(5, int)])[2], np.log(10))
