"""PCA of the raw features: fitted by randomized SVD on the training split, applied to every split."""
import numpy as np

from cs231n.coco_utils import PCA_FEATURE_DIM


def fit_pca(features, num_components=PCA_FEATURE_DIM, seed=0):
    """Fit a PCA projection on features, by randomized SVD (exact SVD for few rows).

    The projection of x is ``(x - mean) @ components.T * scale``. Axes are ordered by decreasing
    variance and signed so that the entry of largest magnitude is positive. When fewer than
    `num_components` axes exist (fewer rows than that), the missing ones are rows of zeros. `scale` is
    the one number that makes the projected training features have mean squared norm equal to
    num_components (so each of the M values has variance 1 on average).

    Inputs:
    - features: array of shape (N, D).
    - num_components: number M of axes.
    - seed: seed of the random test matrix.

    Returns a dict with ``mean`` (D,), ``components`` (M, D) and ``scale`` (a 0-d array), float32.
    """
    X = np.asarray(features, dtype=np.float32)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"fit_pca: features must have shape (N, D) with N >= 1, got {X.shape}")
    if not isinstance(num_components, (int, np.integer)) or isinstance(num_components, bool) or num_components < 1:
        raise ValueError(f"fit_pca: num_components must be a positive integer, got {num_components!r}")
    N, D = X.shape
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)  # (D,)
    Xc = X - mean  # (N, D)
    M = num_components
    oversample = 64
    if N <= M + oversample or D <= M + oversample:
        s, Vt = _top_axes(Xc, M)
    else:
        rng = np.random.default_rng(seed)
        Y = Xc @ rng.standard_normal((D, M + oversample)).astype(np.float32)  # (N, M+p)
        for _ in range(2):  # power iterations sharpen the spectrum
            Q = _orthonormalize(Y)
            Y = Xc @ (Xc.T @ Q)  # (N, M+p)
        Q = _orthonormalize(Y)
        s, Vt = _top_axes(Q.T @ Xc, M)  # the top axes of Xc restricted to the range of Q
    k = min(M, Vt.shape[0])
    components = np.zeros((M, D), dtype=np.float64)
    components[:k] = Vt[:k]
    peaks = np.abs(components[:k]).argmax(axis=1)
    components[:k] *= np.sign(components[np.arange(k), peaks])[:, None]
    components = components.astype(np.float32)
    energy = float(np.sum(s[:k].astype(np.float64) ** 2)) / max(N, 1)
    scale = np.float32(np.sqrt(M / energy) if energy > 0 else 1.0)
    return {"mean": mean, "components": components, "scale": np.asarray(scale, dtype=np.float32)}


def _orthonormalize(Y):
    """Orthonormal columns spanning the range of Y (N, K), by Cholesky QR done twice (CholeskyQR2).

    Used instead of ``np.linalg.qr``, which is far slower for tall matrices in some LAPACK builds. The
    Gram matrices are factored in float64 with a tiny ridge, so rank-deficient Y does not fail.
    """
    Q = Y
    for _ in range(2):  # the second pass repairs the orthogonality lost to rounding
        G = Q.T.astype(np.float64) @ Q.astype(np.float64)  # (K, K)
        G[np.diag_indices_from(G)] += 1e-10 * max(float(np.trace(G)), 1e-30) / G.shape[0]
        L = np.linalg.cholesky(G)  # G = L L^T
        Q = Q @ np.linalg.inv(L).T.astype(Y.dtype)  # (N, K)
    return Q


def _top_axes(B, k):
    """Singular values and right singular vectors of B (R, D), largest first, at most k of them.

    Computed in float64 from the eigen-decomposition of the smaller of B B^T (R, R) and B^T B (D, D).
    """
    B = np.asarray(B, dtype=np.float64)
    R, D = B.shape
    if R <= D:
        lam, U = np.linalg.eigh(B @ B.T)  # ascending
        lam, U = lam[::-1], U[:, ::-1]
    else:
        lam, V = np.linalg.eigh(B.T @ B)
        lam, V = lam[::-1], V[:, ::-1]
    keep = lam > max(lam[0], 0.0) * 1e-10
    keep[k:] = False
    s = np.sqrt(lam[keep])
    Vt = (U[:, keep].T @ B) / s[:, None] if R <= D else V[:, keep].T  # (k', D)
    return s, Vt


def apply_pca(features, pca):
    """Project raw features with a fitted PCA: ``(x - mean) @ components.T * scale``.

    Inputs:
    - features: array of shape (N, D).
    - pca: dict from :func:`fit_pca` (or loaded from ``shapes_featurizer.npz``).

    Returns an array of shape (N, M), float32.
    """
    X = np.asarray(features, dtype=np.float32)
    out = (X - pca["mean"]) @ pca["components"].T  # (N, M)
    out *= np.float32(pca["scale"])
    return out.astype(np.float32, copy=False)
