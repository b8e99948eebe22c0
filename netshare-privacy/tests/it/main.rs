//! The accountant against values computed independently with Google's dp_accounting package
//! (tests/reference/rdp_reference.py wrote tests/reference/rdp_reference.json).

use netshare_privacy::{Event, epsilon_of, noise_for_epsilon, rdp};

fn reference() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/rdp_reference.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("reference JSON")).expect("parses")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn per_step_rdp_matches_dp_accounting_at_every_order() {
    let r = reference();
    let orders: Vec<f64> = r["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    assert_eq!(orders, rdp::default_orders());
    let mut checked = 0;
    for case in r["cases"].as_array().expect("cases") {
        let Some(per_step) = case.get("per_step_rdp").and_then(|v| v.as_array()) else {
            continue;
        };
        let (q, sigma) = (
            case["q"].as_f64().expect("q"),
            case["sigma"].as_f64().expect("sigma"),
        );
        for (a, want) in orders.iter().zip(per_step) {
            let got = rdp::rdp_subsampled_gaussian(q, sigma, *a);
            match want.as_f64() {
                Some(w) => assert!(
                    close(got, w, 1e-6),
                    "q={q} sigma={sigma} alpha={a}: {got} vs {w}"
                ),
                None => assert!(
                    got.is_infinite(),
                    "q={q} sigma={sigma} alpha={a}: reference gave no bound, we gave {got}"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 72);
}

#[test]
fn epsilon_after_composition_matches_dp_accounting() {
    let r = reference();
    for case in r["cases"].as_array().expect("cases") {
        let Some(want) = case.get("epsilon").and_then(|v| v.as_f64()) else {
            continue;
        };
        let ev = Event::SubsampledGaussian {
            q: case["q"].as_f64().expect("q"),
            sigma: case["sigma"].as_f64().expect("sigma"),
            steps: case["steps"].as_u64().expect("steps"),
        };
        let g = epsilon_of(
            std::slice::from_ref(&ev),
            case["delta"].as_f64().expect("delta"),
        );
        assert!(
            close(g.epsilon, want, 1e-6),
            "{ev:?}: {} vs {want}",
            g.epsilon
        );
        assert_eq!(g.order, case["order"].as_f64().expect("order"), "{ev:?}");
    }
    let c = &r["composed"];
    let g = epsilon_of(
        &[
            Event::SubsampledGaussian {
                q: 100.0 / 5000.0,
                sigma: 1.0,
                steps: 2000,
            },
            Event::SubsampledGaussian {
                q: 100.0 / 2000.0,
                sigma: 1.0,
                steps: 500,
            },
            Event::Gaussian {
                sigma: 10.0,
                count: 2,
            },
        ],
        1e-5,
    );
    assert!(
        close(g.epsilon, c["epsilon"].as_f64().expect("eps"), 1e-6),
        "{g:?} vs {c}"
    );
}

#[test]
fn the_noise_search_returns_a_sigma_that_meets_the_target_and_barely() {
    let (q, steps, delta, target) = (0.02, 2000, 1e-5, 3.0);
    let s = noise_for_epsilon(q, steps, delta, target).expect("reachable");
    let at = |sigma| epsilon_of(&[Event::SubsampledGaussian { q, sigma, steps }], delta).epsilon;
    assert!(at(s) <= target);
    assert!(at(s / 1.01) > target, "a 1% smaller sigma would overshoot");
}
