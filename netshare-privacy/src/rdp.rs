//! Rényi-DP accounting of the subsampled Gaussian mechanism (DP-SGD on the critics), of plain
//! Gaussian releases (the noisy flow count per chunk), and the conversion to (ε, δ).
//!
//! The subsampled-Gaussian bound is the one of Mironov, Talwar and Zhang (2019), evaluated in log
//! space: an exact binomial sum for integer orders and the two-series expansion for fractional
//! orders, as common accountants do.

/// The orders at which RDP is tracked (those of common accountants).
pub fn default_orders() -> Vec<f64> {
    let mut o = vec![1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5];
    o.extend((5..64).map(f64::from));
    o.extend([128.0, 256.0, 512.0]);
    o
}

/// log(exp(a) + exp(b)) without overflow.
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// log |C(n, k)| for real n.
fn log_binom(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// ln |Γ(x)| (Lanczos, g = 7, 9 terms; relative error below 1e-13 in the range used).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the approximation in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin().abs()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// log of erfc(x), accurate for large x too.
fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return erfc(x).ln();
    }
    // exp(-x^2) underflows near x = 26.5: use the asymptotic expansion, whose first omitted
    // term is below 1e-10 relative from x = 25 on.
    let x2 = x * x;
    -x2 - x.ln() - 0.5 * std::f64::consts::PI.ln()
        + (1.0 - 0.5 / x2 + 0.75 / (x2 * x2) - 1.875 / (x2 * x2 * x2)).ln()
}

/// erfc(x) (W. J. Cody's rational approximations; relative error below 1e-14).
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 0.5 {
        return 1.0 - erf_small(x);
    }
    let (p, q): (&[f64], &[f64]) = if x < 4.0 {
        (
            &[
                5.641_884_969_886_701e-1,
                8.883_149_794_388_376,
                6.611_919_063_714_163e1,
                2.986_351_381_974_001e2,
                8.819_522_212_417_69e2,
                1.712_047_612_634_070_7e3,
                2.051_078_377_826_071_6e3,
                1.230_339_354_797_997_2e3,
                2.153_115_354_744_038_3e-8,
            ],
            &[
                1.574_492_611_070_983_4e1,
                1.176_939_508_913_125e2,
                5.371_811_018_620_099e2,
                1.621_389_574_566_690_2e3,
                3.290_799_235_733_459_7e3,
                4.362_619_090_143_247e3,
                3.439_367_674_143_721_6e3,
                1.230_339_354_803_749_5e3,
            ],
        )
    } else {
        (
            &[
                3.053_266_349_612_323_4e-1,
                3.603_448_999_498_044_5e-1,
                1.257_817_261_112_292_5e-1,
                1.608_378_514_874_227_6e-2,
                6.587_491_615_298_378e-4,
                1.631_538_713_730_909_6e-2,
            ],
            &[
                2.568_520_192_289_822,
                1.872_952_849_923_460_4,
                5.279_051_029_514_284e-1,
                6.051_834_131_244_132e-2,
                2.335_204_976_268_691_8e-3,
            ],
        )
    };
    if x < 4.0 {
        let mut num = p[8] * x;
        let mut den = x;
        for i in 0..7 {
            num = (num + p[i]) * x;
            den = (den + q[i]) * x;
        }
        let r = (num + p[7]) / (den + q[7]);
        return (-x * x).exp() * r;
    }
    let z = 1.0 / (x * x);
    let mut num = p[5] * z;
    let mut den = z;
    for i in 0..4 {
        num = (num + p[i]) * z;
        den = (den + q[i]) * z;
    }
    let r = z * (num + p[4]) / (den + q[4]);
    let r = (1.0 / std::f64::consts::PI.sqrt() - r) / x;
    (-x * x).exp() * r
}

fn erf_small(x: f64) -> f64 {
    const A: [f64; 5] = [
        3.161_123_743_870_565_6,
        1.138_641_541_510_501_6e2,
        3.774_852_376_853_02e2,
        3.209_377_589_138_469_5e3,
        1.857_777_061_846_031_5e-1,
    ];
    const B: [f64; 4] = [
        2.360_129_095_234_412_2e1,
        2.440_246_379_344_441_7e2,
        1.282_616_526_077_372_3e3,
        2.844_236_833_439_171e3,
    ];
    let z = x * x;
    let mut num = A[4] * z;
    let mut den = z;
    for i in 0..3 {
        num = (num + A[i]) * z;
        den = (den + B[i]) * z;
    }
    x * (num + A[3]) / (den + B[3])
}

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    for i in 0..=alpha {
        let fi = i as f64;
        let coef = log_binom(alpha as f64, fi) + fi * q.ln() + (alpha - i) as f64 * (1.0 - q).ln();
        let s = coef + (fi * fi - fi) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    // The two parts of A_alpha, integrals over (-inf, z0] and [z0, inf), each a series of
    // positive terms (Mironov, Talwar, Zhang 2019, section 3.3), summed in log space.
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    for i in 0..1000u32 {
        let fi = f64::from(i);
        let log_coef = log_binom(alpha, fi);
        let j = alpha - fi;
        let log_t0 = log_coef + fi * q.ln() + j * log1mq;
        let log_t1 = log_coef + j * q.ln() + fi * log1mq;
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / (2.0f64.sqrt() * sigma));
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / (2.0f64.sqrt() * sigma));
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    // Not converged (small sigma, large q, order near 1): this order gives no usable bound, and
    // the conversion to (epsilon, delta) skips it.
    f64::INFINITY
}

/// RDP ε(α) of one step of the Gaussian mechanism with noise multiplier `sigma`, applied to a
/// Poisson subsample with rate `q`.
pub fn rdp_subsampled_gaussian(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 {
        return f64::INFINITY;
    }
    if q >= 1.0 {
        return rdp_gaussian(sigma, alpha);
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// RDP ε(α) of one Gaussian release of a sensitivity-1 query with noise multiplier `sigma`.
pub fn rdp_gaussian(sigma: f64, alpha: f64) -> f64 {
    alpha / (2.0 * sigma * sigma)
}

/// Converts an RDP curve to (ε, δ)-DP: the smallest ε over the orders, with the conversion of
/// Balle et al. (2020), `ε = rdp + ln(1 − 1/α) − ln(δα)/(α−1)`, which is never worse than
/// the classic `rdp + ln(1/δ)/(α−1)`. Returns (ε, best order).
pub fn epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            // Numerically negative divergence, or small enough that the KL bound
            // delta <= sqrt(1 - exp(-KL)) already gives epsilon = 0.
            0.0
        } else if a > 1.01 && r.is_finite() {
            // The conversion is unstable as alpha -> 1, and useless there anyway.
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        if eps < best.0 {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_and_erfc_match_known_values() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        // erfc(1) = 0.157299207050285130658...
        assert!((erfc(1.0) - 0.157_299_207_050_285_13).abs() < 1e-14);
        assert!((erfc(0.1) - 0.887_537_083_981_715).abs() < 1e-14);
        assert!((erfc(5.5) - 7.357_847_917_974_398e-15).abs() / 7.357_847_917_974_398e-15 < 1e-10);
        // The asymptotic branch joins the exact one smoothly.
        let x2 = 625.0f64;
        let asymptotic = -x2 - 25f64.ln() - 0.5 * std::f64::consts::PI.ln()
            + (1.0 - 0.5 / x2 + 0.75 / (x2 * x2) - 1.875 / (x2 * x2 * x2)).ln();
        assert!((erfc(25.0).ln() - asymptotic).abs() < 1e-8);
        assert_eq!(log_erfc(25.0), asymptotic);
    }

    #[test]
    fn full_batch_subsampling_is_the_plain_gaussian() {
        assert_eq!(rdp_subsampled_gaussian(1.0, 2.0, 8.0), 8.0 / 8.0);
    }

    #[test]
    fn integer_order_binomial_sum_matches_a_hand_worked_case() {
        // alpha = 2: A = (1-q)^2 + 2q(1-q) + q^2 e^{1/sigma^2}, so eps = ln(1 + q^2 (e^{1/s^2} - 1)).
        let (q, s) = (0.1, 1.5);
        let want = (1.0 + q * q * (1.0_f64 / (s * s)).exp_m1()).ln();
        assert!((rdp_subsampled_gaussian(q, s, 2.0) - want).abs() < 1e-13);
    }

    #[test]
    fn fractional_orders_lie_between_their_integer_neighbours() {
        let (q, s) = (0.01, 1.1);
        for a in [2.25f64, 3.5, 4.5] {
            let lo = rdp_subsampled_gaussian(q, s, a.floor());
            let mid = rdp_subsampled_gaussian(q, s, a);
            let hi = rdp_subsampled_gaussian(q, s, a.ceil());
            assert!(
                lo <= mid + 1e-12 && mid <= hi + 1e-12,
                "alpha {a}: {lo} {mid} {hi}"
            );
        }
    }
}
