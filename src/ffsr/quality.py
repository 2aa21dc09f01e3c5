"""Pixel comparisons: fidelity of a conversion (DESIGN.md §5) and PSNR/SSIM on Y."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FidelityReport:
    max_diff: int
    within_one: float
    """Fraction of 8-bit samples that differ by at most one level."""
    psnr: float

    @property
    def passes(self) -> bool:
        """≤1 level on ≥99.9 % of samples and PSNR ≥ 50 dB."""
        return self.within_one >= 0.999 and self.psnr >= 50.0

    def as_dict(self) -> dict[str, float]:
        return {"max_diff": int(self.max_diff), "within_one": round(float(self.within_one), 6),
                "psnr_db": round(float(self.psnr), 2)}


def to_8bit(x: np.ndarray) -> np.ndarray:
    """Float [0,1] -> uint8 the way FFmpeg writes model output (round, clip)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def compare_8bit(got: np.ndarray, want: np.ndarray) -> FidelityReport:
    if got.shape != want.shape:
        raise ValueError(f"shape mismatch: {got.shape} vs {want.shape}")
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    return FidelityReport(int(diff.max()), float(np.mean(diff <= 1)), psnr(got, want))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (limited range, as in MATLAB's rgb2ycbcr used by SR papers), float."""
    rgb = rgb.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def shave(x: np.ndarray, border: int) -> np.ndarray:
    return x[border:-border, border:-border] if border else x


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, on one channel."""
    from numpy.lib.stride_tricks import sliding_window_view

    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()

    def filt(x: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", sliding_window_view(x, (11, 11)), w)

    mu_a, mu_b = filt(a), filt(b)
    s_aa = filt(a * a) - mu_a**2
    s_bb = filt(b * b) - mu_b**2
    s_ab = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    return float(np.mean(num / den))
