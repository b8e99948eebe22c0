//! Sigmoid and tanh over f32 slices without libm calls: Cephes' `expf` and `tanhf` polynomials
//! written branch-free, so the compiler vectorises the loops. On x86-64 copies compiled for
//! AVX-512F and for AVX2 are picked at run time; each lane does the same IEEE operations (no
//! fused multiply-add, no reductions), so every copy gives the same bits.

/// `e^x` for x in [-87, 88] (clamped there): `2^n · e^r` with `n = round(x / ln 2)`.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding 1.5 · 2^23 rounds to an integer in f32 without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 in two parts, so n · ln 2 is subtracted without rounding error.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 0.166_666_65)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    // n as an integer without a float-to-int conversion: t = 1.5 · 2^23 + n has an ulp of 1,
    // so its bits are those of 1.5 · 2^23 plus n. (`n as i32` is the same number, but Rust's
    // saturating cast does not vectorise: it cost a quarter of a capture training step.)
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(ni.wrapping_add(127) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    let ax = x.abs();
    let s = x * x;
    let small = ((((-5.704_988_7e-3 * s + 2.063_909e-2) * s - 5.373_971_6e-2) * s + 0.133_314_42)
        * s
        - 0.333_332_8)
        * s
        * x
        + x;
    let large = (1.0 - 2.0 / (exp(2.0 * ax) + 1.0)).copysign(x);
    if ax < 0.625 { small } else { large }
}

macro_rules! slice_fn {
    ($name:ident, $avx2:ident, $avx512:ident, $f:ident) => {
        /// Applies the function to every element, in place.
        #[allow(unsafe_code)]
        pub(crate) fn $name(x: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, the only feature the copy is compiled for.
                    unsafe { $avx512(x) };
                    return;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, the only feature the copy is compiled for.
                    unsafe { $avx2(x) };
                    return;
                }
            }
            for v in x {
                *v = $f(*v);
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2(x: &mut [f32]) {
            for v in x {
                *v = $f(*v);
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512(x: &mut [f32]) {
            for v in x {
                *v = $f(*v);
            }
        }
    };
}

slice_fn!(sigmoid_f32, sigmoid_avx2, sigmoid_avx512, sigmoid);
slice_fn!(tanh_f32, tanh_avx2, tanh_avx512, tanh);

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against f64, measured where the value is a normal f32.
    fn worst(f: fn(&mut [f32]), exact: fn(f64) -> f64) -> f64 {
        let xs: Vec<f32> = (-400_000..=400_000).map(|i| i as f32 * 1e-4).collect();
        let mut ys = xs.clone();
        f(&mut ys);
        let mut worst: f64 = 0.0;
        for (&x, &y) in xs.iter().zip(&ys) {
            let e = exact(f64::from(x));
            if e.abs() > 1e-30 {
                worst = worst.max((f64::from(y) - e).abs() / e.abs());
            }
        }
        worst
    }

    #[test]
    fn sigmoid_and_tanh_are_within_a_few_ulp_of_f64() {
        let s = worst(sigmoid_f32, |x| 1.0 / (1.0 + (-x).exp()));
        let t = worst(tanh_f32, f64::tanh);
        eprintln!("worst relative error: sigmoid {s:e}, tanh {t:e}");
        assert!(s < 4e-7, "sigmoid {s:e}");
        assert!(t < 4e-7, "tanh {t:e}");
        let mut edges = [-1e4, -88.5, 88.5, 1e4, 0.0, -0.0, 1e-30];
        tanh_f32(&mut edges);
        assert_eq!(edges[..4], [-1.0, -1.0, 1.0, 1.0]);
        assert_eq!(edges[6], 1e-30);
        let mut edges = [-1e4, 1e4, 0.0];
        sigmoid_f32(&mut edges);
        assert!(edges[0] >= 0.0 && edges[0] < 1e-37, "{}", edges[0]);
        assert_eq!(edges[1..], [1.0, 0.5]);
    }

    #[test]
    #[allow(unsafe_code)]
    fn every_simd_copy_gives_the_portable_bits() {
        let xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 1.37e-3).collect();
        type OnSlice = fn(&mut [f32]);
        type OnOne = fn(f32) -> f32;
        let pairs: [(OnSlice, OnOne); 2] = [(sigmoid_f32, sigmoid), (tanh_f32, tanh)];
        for (fast, plain) in pairs {
            let mut a = xs.clone();
            fast(&mut a);
            let b: Vec<f32> = xs.iter().map(|&x| plain(x)).collect();
            assert_eq!(a, b);
        }
        // Each copy the dispatcher may pick, where this CPU can run it.
        #[cfg(target_arch = "x86_64")]
        {
            let mut copies: Vec<(&str, OnSlice, OnOne)> = Vec::new();
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                copies.push(("sigmoid avx2", |x| unsafe { sigmoid_avx2(x) }, sigmoid));
                copies.push(("tanh avx2", |x| unsafe { tanh_avx2(x) }, tanh));
            } else {
                netshare_core::skip::note_skip(
                    "every_simd_copy_gives_the_portable_bits",
                    "this CPU has no AVX2, so the AVX2 copies were not compared",
                );
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                copies.push(("sigmoid avx512", |x| unsafe { sigmoid_avx512(x) }, sigmoid));
                copies.push(("tanh avx512", |x| unsafe { tanh_avx512(x) }, tanh));
            } else {
                netshare_core::skip::note_skip(
                    "every_simd_copy_gives_the_portable_bits",
                    "this CPU has no AVX-512F, so the AVX-512 copies were not compared",
                );
            }
            for (name, fast, plain) in copies {
                let mut a = xs.clone();
                fast(&mut a);
                let b: Vec<f32> = xs.iter().map(|&x| plain(x)).collect();
                assert!(a == b, "{name} differs from the portable form");
            }
        }
    }
}
