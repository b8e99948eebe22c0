//! The self-contained HTML report: tables of every metric, downstream results, and inline SVG
//! plots (CDFs per continuous field, IP rank-frequency, top destination ports, training curves).
//! No scripts, no external resources.

use std::fmt::Write;

use crate::fidelity::{emd_fields, emd_sample};
use crate::joint::flow_samples;
use crate::report::{Inputs, Report};
use crate::stats;
use crate::svg::{Scale, Series, bar_chart, esc, fmt_num, line_chart};
use crate::table::Table;

const COLORS: [(&str, &str); 6] = [
    ("real", "#222222"),
    ("synthetic", "#d62728"),
    ("marginals", "#1f77b4"),
    ("reference-impl", "#ff7f0e"),
    ("half-a", "#9467bd"),
    ("half-b", "#2ca02c"),
];

fn roles(inputs: &Inputs) -> Vec<(&'static str, &'static str, &Table)> {
    let all = [
        &inputs.real,
        &inputs.synthetic,
        &inputs.marginals,
        &inputs.reference_impl,
        &inputs.half_a,
        &inputs.half_b,
    ];
    COLORS
        .iter()
        .zip(all)
        .filter_map(|((name, color), t)| t.as_ref().map(|t| (*name, *color, t)))
        .collect()
}

/// At most `n` points of the empirical CDF of a sample (its quantiles).
fn cdf_points(sample: &[f64], n: usize) -> Vec<(f64, f64)> {
    let s = stats::sorted(sample);
    if s.is_empty() {
        return Vec::new();
    }
    let m = s.len();
    let step = (m / n).max(1);
    let mut pts: Vec<(f64, f64)> = (0..m)
        .step_by(step)
        .map(|i| (s[i], (i + 1) as f64 / m as f64))
        .collect();
    pts.push((s[m - 1], 1.0));
    pts
}

fn rank_points<K: Ord + Copy>(ips: &[K], n: usize) -> Vec<(f64, f64)> {
    let c = stats::rank_counts(ips);
    let total: f64 = c.iter().sum();
    let m = c.len();
    // Log-spaced ranks keep the tail visible without thousands of points.
    let mut idx: Vec<usize> = (0..n)
        .map(|k| ((m as f64).powf(k as f64 / n as f64) - 1.0).round() as usize)
        .collect();
    idx.push(m.saturating_sub(1));
    idx.dedup();
    idx.into_iter()
        .filter(|&i| i < m)
        .map(|i| ((i + 1) as f64, c[i] / total))
        .collect()
}

fn metric_cell(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "n/a".into())
}

/// Renders the report page.
pub fn render(report: &Report, inputs: &Inputs) -> String {
    let mut h = String::new();
    // The judged trace first, then what it is judged against.
    let rank = |c: &str| {
        [
            "synthetic",
            "synthetic-in-sample",
            "marginals",
            "real-vs-real",
            "reference-impl",
        ]
        .iter()
        .position(|k| *k == c)
        .unwrap_or(usize::MAX)
    };
    let mut comps: Vec<&String> = report.comparisons.keys().collect();
    comps.sort_by_key(|c| (rank(c), c.as_str()));
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>netshare-eval report</title><style>\
body{{font-family:sans-serif;margin:24px;color:#222;max-width:1500px}}table{{border-collapse:collapse;margin:8px 0 18px}}\
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}th{{background:#f3f3f3}}td.l,th.l{{text-align:left}}\
.plots{{display:flex;flex-wrap:wrap;gap:10px}}.note{{color:#555;font-size:13px}}h2{{margin-top:28px;border-bottom:1px solid #ddd}}</style></head><body>"
    );
    h.push_str("<h1>netshare-eval report</h1>");
    if !report.verdict.is_empty() {
        h.push_str("<ul>");
        for line in &report.verdict {
            let _ = write!(h, "<li>{}</li>", esc(line));
        }
        h.push_str("</ul>");
    }
    let _ = write!(
        h,
        "<p class=\"note\">Trace kind: <b>{:?}</b>. Distributional metrics use the <b>{}</b> convention; metrics beyond the paper use <b>netshare-rs</b>. Seed {}. Each comparison judges a candidate against a reference; <i>real-vs-real</i> compares two parts of the real trace with disjoint five-tuples (the floor a generator cannot be expected to beat; in a held-out report, the model's training records against the held-out ones), <i>synthetic-in-sample</i> judges the synthetic trace against its own training records (NetShare's convention), <i>marginals</i> draws each field independently from the real marginals (the baseline to beat); <i>reference-impl</i>, when present, is the reference NetShare implementation's output on the same real trace.</p>",
        report.kind,
        report.config.convention.name(),
        report.config.seed
    );
    // The family split only where a table holds IPv6: an IPv4 report keeps its page.
    let v6 = crate::report::has_ipv6(&report.tables);
    h.push_str("<table><tr><th class=\"l\">table</th><th>rows</th><th>five-tuples</th>");
    if v6 {
        h.push_str("<th>IPv6 rows</th><th>IPv6 five-tuples</th>");
    }
    h.push_str("</tr>");
    for (name, t) in &report.tables {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td>",
            esc(name),
            t.rows,
            t.five_tuples
        );
        if v6 {
            let (rows, tuples) = t.ipv6_percent();
            let _ = write!(
                h,
                "<td>{} ({rows:.1}%)</td><td>{} ({tuples:.1}%)</td>",
                t.ipv6_rows, t.ipv6_five_tuples
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");

    h.push_str("<h2>Metrics</h2><table><tr><th class=\"l\">metric</th><th class=\"l\">convention</th><th>better</th>");
    for c in &comps {
        let cmp = &report.comparisons[*c];
        let _ = write!(
            h,
            "<th>{}<br><span class=\"note\">{} vs {}</span></th>",
            esc(c),
            esc(&cmp.reference),
            esc(&cmp.candidate)
        );
    }
    h.push_str("<th class=\"l\">definition</th></tr>");
    let first = &report.comparisons[comps[0]];
    let groups: Vec<(&str, Vec<&String>)> = vec![
        ("distributional", first.distributional.keys().collect()),
        ("joint", first.joint.keys().collect()),
        ("flow", first.flow.keys().collect()),
        ("detectability", first.detectability.keys().collect()),
        (
            "detectability_by_field",
            first.detectability_by_field.keys().collect(),
        ),
    ];
    for (group, keys) in groups {
        for k in keys {
            let get = |c: &String| {
                let cmp = &report.comparisons[c];
                match group {
                    "distributional" => cmp.distributional.get(k),
                    "joint" => cmp.joint.get(k),
                    "flow" => cmp.flow.get(k),
                    "detectability_by_field" => cmp.detectability_by_field.get(k),
                    _ => cmp.detectability.get(k),
                }
            };
            let Some(m0) = get(comps[0]) else { continue };
            let _ = write!(
                h,
                "<tr><td class=\"l\">{group}.{}</td><td class=\"l\">{}</td><td>{}</td>",
                esc(k),
                esc(&m0.convention),
                if m0.lower_is_better {
                    "lower"
                } else {
                    "higher"
                }
            );
            for c in &comps {
                let _ = write!(h, "<td>{}</td>", metric_cell(get(c).and_then(|m| m.value)));
            }
            // Any comparison's note (values left out, undefined), named by comparison.
            let notes: Vec<String> = comps
                .iter()
                .filter_map(|c| {
                    get(c)
                        .and_then(|m| m.note.as_ref())
                        .map(|n| format!("{c}: {n}"))
                })
                .collect();
            let _ = write!(
                h,
                "<td class=\"l note\">{}{}</td></tr>",
                esc(&m0.definition),
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("<br><b>note</b>: {}", esc(&notes.join("; ")))
                }
            );
        }
    }
    h.push_str("</table>");

    h.push_str("<h2>Mutual information of field pairs (nats, netshare-rs)</h2><table><tr><th class=\"l\">pair</th><th>reference</th>");
    for c in &comps {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>");
    for (i, p) in first.mutual_information.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{} × {}</td><td>{}</td>",
            esc(&p.a),
            esc(&p.b),
            fmt_num(p.reference)
        );
        for c in &comps {
            let v = report.comparisons[*c]
                .mutual_information
                .get(i)
                .map(|q| q.candidate);
            let _ = write!(h, "<td>{}</td>", metric_cell(v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><p class=\"note\">The reference column is the real trace (half-a for real-vs-real).</p>");

    h.push_str(
        "<h2>Downstream: traffic-type classification (train on candidate, test on real)</h2>",
    );
    for c in &comps {
        let cl = &report.comparisons[*c].classification;
        let _ = write!(h, "<h3>{}</h3>", esc(c));
        if let Some(why) = &cl.skipped {
            let _ = write!(h, "<p class=\"note\">Skipped: {}</p>", esc(why));
            continue;
        }
        let _ = write!(
            h,
            "<p class=\"note\">Target: <b>{}</b>. Classes: {}. Rows: {:?}.</p>",
            esc(&cl.target),
            esc(&cl.classes.join(", ")),
            cl.rows
        );
        h.push_str("<table><tr><th class=\"l\">classifier</th><th>accuracy, real-trained</th><th>accuracy, candidate-trained</th></tr>");
        for s in &cl.scores {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.classifier),
                fmt_num(s.real_trained),
                fmt_num(s.candidate_trained)
            );
        }
        let _ = write!(
            h,
            "<tr><td class=\"l\">Spearman of classifier order</td><td colspan=\"2\">{}</td></tr></table>",
            metric_cell(cl.rank_correlation.value)
        );
    }
    h.push_str("<h2>Downstream: heavy-hitter telemetry</h2>");
    for c in &comps {
        let t = &report.comparisons[*c].telemetry;
        let _ = write!(
            h,
            "<h3>{}</h3><p class=\"note\">{}</p><table><tr><th class=\"l\">sketch</th><th>error on reference</th><th>error on candidate</th><th>relative difference</th></tr>",
            esc(c),
            esc(&t.setup)
        );
        for s in &t.scores {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.sketch),
                metric_cell(s.reference_error),
                metric_cell(s.candidate_error),
                metric_cell(s.relative_difference)
            );
        }
        let _ = write!(
            h,
            "<tr><td class=\"l\">Spearman of sketch order</td><td colspan=\"3\">{}</td></tr></table>",
            metric_cell(t.rank_correlation.value)
        );
    }

    h.push_str(
        "<h2>Downstream: anomaly detection (fit on candidate normal rows, score real rows)</h2>",
    );
    for c in &comps {
        let a = &report.comparisons[*c].anomaly;
        let _ = write!(h, "<h3>{}</h3>", esc(c));
        if let Some(why) = &a.skipped {
            let _ = write!(h, "<p class=\"note\">Skipped: {}</p>", esc(why));
            continue;
        }
        let _ = write!(
            h,
            "<p class=\"note\">Normal label: {}. Rows: {:?}.</p><table><tr><th class=\"l\">detector</th><th>AUC, real-fitted</th><th>AUC, candidate-fitted</th></tr>",
            esc(a.normal_label.as_deref().unwrap_or("")),
            a.rows
        );
        for d in &a.scores {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.detector),
                metric_cell(d.real_fitted_auc),
                metric_cell(d.candidate_fitted_auc)
            );
        }
        let _ = write!(
            h,
            "<tr><td class=\"l\">Spearman of detector order</td><td colspan=\"2\">{}</td></tr></table>",
            metric_cell(a.rank_correlation.value)
        );
    }

    if let Some(l) = &report.ledger {
        let _ = write!(
            h,
            "<h2>Privacy ledger (DP-SGD)</h2><p class=\"note\">{}</p><table>\
             <tr><td class=\"l\">ε (δ = {:e})</td><td>{:.4}</td></tr>\
             <tr><td class=\"l\">target ε</td><td>{}</td></tr>\
             <tr><td class=\"l\">noise multiplier σ</td><td>{:.4}</td></tr>\
             <tr><td class=\"l\">clip norm C</td><td>{}</td></tr>\
             <tr><td class=\"l\">accountant</td><td>{} (best order {})</td></tr>\
             <tr><td class=\"l\">public</td><td>{}</td></tr></table>\
             <table><tr><th>chunk</th><th>released flows</th><th>sampling rate q</th>\
             <th>noisy steps</th></tr>",
            esc(&l.mechanism),
            l.delta,
            l.epsilon,
            l.target_epsilon
                .map_or("none".to_string(), |t| format!("{t}")),
            l.noise_multiplier,
            l.clip_norm,
            esc(&l.accountant),
            l.order,
            esc(&l.public)
        );
        for c in &l.chunks {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td></tr>",
                c.chunk, c.released_examples, c.sampling_rate, c.steps
            );
        }
        h.push_str("</table>");
    }
    if let Some(a) = &report.privacy {
        let _ = write!(
            h,
            "<h2>Privacy: membership-inference audit</h2><p class=\"note\">{} training records \
             (members) and {} held-out records (non-members) ask for their closest record in \
             each candidate; the attack guesses member when it is close. Distance: 1 per differing \
             five-tuple field, plus the standardised log1p difference of {}. \
             <i>real-vs-real</i> is held-out real traffic that never saw the members: what no \
             memorisation looks like here.</p><table><tr><th class=\"l\">candidate</th>\
             <th>attack AUC</th><th>median distance, members</th><th>median distance, \
             non-members</th><th>copies of a member</th><th>copies of a non-member</th></tr>",
            a.members,
            a.non_members,
            esc(&a.size_fields.join(", "))
        );
        for (name, x) in &a.candidates {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}%</td><td>{:.2}%</td></tr>",
                esc(name),
                metric_cell(x.dcr_auc),
                metric_cell(x.member_median_dcr),
                metric_cell(x.non_member_median_dcr),
                100.0 * x.exact_copy_share_members,
                100.0 * x.exact_copy_share_non_members
            );
        }
        h.push_str("</table>");
    }

    let rs = roles(inputs);
    h.push_str("<h2>CDFs</h2><div class=\"plots\">");
    for field in emd_fields(report.kind) {
        let scale = if matches!(*field, "ts" | "time") {
            Scale::Linear
        } else {
            Scale::Log1p
        };
        let series: Vec<Series> = rs
            .iter()
            .map(|(n, c, t)| Series {
                name: n.to_string(),
                color: c.to_string(),
                points: cdf_points(&emd_sample(t, field), 400),
                step: true,
            })
            .collect();
        let unit = match *field {
            "ts" | "time" => " (µs since first record)",
            "td" => " (s)",
            _ => "",
        };
        h.push_str(&line_chart(
            &format!("CDF of {field}"),
            &format!("{field}{unit}"),
            "fraction of records",
            scale,
            Scale::Linear,
            &series,
        ));
    }
    for (k, label) in [
        (0usize, "records per five-tuple"),
        (1, "five-tuple duration (s)"),
    ] {
        let series: Vec<Series> = rs
            .iter()
            .map(|(n, c, t)| Series {
                name: n.to_string(),
                color: c.to_string(),
                points: cdf_points(&flow_samples(t)[k], 400),
                step: true,
            })
            .collect();
        h.push_str(&line_chart(
            &format!("CDF of {label}"),
            label,
            "fraction of five-tuples",
            Scale::Log1p,
            Scale::Linear,
            &series,
        ));
    }
    h.push_str("</div><h2>IP popularity (rank-frequency)</h2><div class=\"plots\">");
    for (name, pick) in [("srcip", 0), ("dstip", 1)] {
        let series: Vec<Series> = rs
            .iter()
            .map(|(n, c, t)| Series {
                name: n.to_string(),
                color: c.to_string(),
                points: rank_points(if pick == 0 { &t.srcip } else { &t.dstip }, 200),
                step: false,
            })
            .collect();
        h.push_str(&line_chart(
            &format!("{name} rank-frequency"),
            "popularity rank",
            "fraction of records",
            Scale::Log,
            Scale::Log,
            &series,
        ));
    }
    h.push_str("</div><h2>Top destination ports</h2><div class=\"plots\">");
    if let Some(real) = &inputs.real {
        let mut top: Vec<(u16, f64)> = stats::counts(&real.dstport).into_iter().collect();
        top.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(10);
        let cats: Vec<String> = top.iter().map(|(p, _)| p.to_string()).collect();
        let series: Vec<(String, String, Vec<f64>)> = rs
            .iter()
            .filter(|(n, _, _)| !n.starts_with("half"))
            .map(|(n, c, t)| {
                let cnt = stats::counts(&t.dstport);
                let tot = t.len().max(1) as f64;
                (
                    n.to_string(),
                    c.to_string(),
                    top.iter()
                        .map(|(p, _)| cnt.get(p).copied().unwrap_or(0.0) / tot)
                        .collect(),
                )
            })
            .collect();
        h.push_str(&bar_chart(
            "Top 10 destination ports of the real trace",
            "fraction of records",
            &cats,
            &series,
        ));
    }
    h.push_str("</div>");
    if let Some(log) = &report.training {
        let palette = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf",
        ];
        if let Some((curves, timed)) = log.time_to_quality() {
            h.push_str("<h2>Time to quality</h2>");
            h.push_str(&format!(
                "<p class=\"note\">The model's quick quality score at each checkpoint: the mean 1-D \
                 Wasserstein distance, over the columns the critic sees (each attribute dimension, \
                 each feature at each step), between 1,000 generated flows and the chunk's \
                 training flows, in the encoded space. Lower is better; it ignores joints, so it \
                 shows when more training stops paying, while the tables above judge the \
                 trace. {}</p><div class=\"plots\">",
                if timed {
                    "Against wall-clock seconds of training."
                } else {
                    "Against iterations: the log has no wall time (train with the model's \
                     <code>log_wall_time = true</code> for seconds; each iteration costs about \
                     the same, so the shape is the same)."
                }
            ));
            let series = chunk_series(&curves, &palette);
            h.push_str(&line_chart(
                "Quick quality score against training time",
                if timed {
                    "training seconds"
                } else {
                    "iteration"
                },
                "score (lower is better)",
                Scale::Linear,
                Scale::Linear,
                &series,
            ));
            h.push_str("</div>");
        }
        h.push_str("<h2>Training curves</h2><div class=\"plots\">");
        for (col, chunks) in &log.curves {
            let series = chunk_series(chunks, &palette);
            h.push_str(&line_chart(
                col,
                "iteration",
                col,
                Scale::Linear,
                Scale::Linear,
                &series,
            ));
        }
        h.push_str("</div>");
    }
    h.push_str("</body></html>\n");
    h
}

/// One line per chunk, coloured in order.
fn chunk_series(curves: &crate::training::ChunkCurves, palette: &[&str]) -> Vec<Series> {
    curves
        .iter()
        .enumerate()
        .map(|(i, (chunk, pts))| Series {
            name: format!("chunk {chunk}"),
            color: palette[i % palette.len()].to_string(),
            points: pts.clone(),
            step: false,
        })
        .collect()
}
