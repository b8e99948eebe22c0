//! Synthesis end to end on real traces: encode, a tiny trained model, synthesize; read the
//! outputs back; determinism; store mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use netshare_core::records::{Records, read_records, write_records};
use netshare_core::stage::run_stage;
use netshare_core::{Digest, Store};
use netshare_encode::EncodeConfig;
use netshare_model::{ModelConfig, Profile, TrainOptions};
use netshare_synth::generate::{SynthConfig, SynthInputs, SynthReport, synthesize};
use netshare_synth::write::{LinkType, OutputFormat};

use crate::{skype_packets, ugr16_flows, with_min_lengths};

/// Encoded and model directories of one real trace (built once per test binary).
struct Trained {
    _dir: tempfile::TempDir,
    encoded: PathBuf,
    model: PathBuf,
}

fn train(records: Records, n_chunks: usize) -> Trained {
    train_with(records, n_chunks, None)
}

fn train_with(records: Records, n_chunks: usize, dp: Option<netshare_model::DpConfig>) -> Trained {
    let dir = crate::tmp();
    let encoded = dir.path().join("encoded");
    let model = dir.path().join("model");
    std::fs::create_dir_all(&encoded).expect("mkdir");
    std::fs::create_dir_all(&model).expect("mkdir");
    let mut cfg = EncodeConfig {
        n_chunks: Some(n_chunks),
        max_flow_len: Some(8),
        ..EncodeConfig::default()
    };
    // A private model needs private-mode encoding: here the records are their own public
    // records (a test of the plumbing, not of privacy).
    let public = dp.is_some().then(|| records.clone());
    if let (Some(_), Records::Flows(f)) = (&dp, &records) {
        let (lo, hi) = (
            f.ts_us.iter().min().copied().unwrap_or(0),
            f.ts_us.iter().max().copied().unwrap_or(0),
        );
        cfg.private = true;
        cfg.time_range_us = Some([lo - 1, hi + 60_000_000]);
    }
    let e = netshare_encode::encode(&records, public.as_ref(), &cfg).expect("encode");
    e.write(&encoded).expect("write encoded");
    let m = netshare_model::Encoded::from_dir(&encoded).expect("read encoded");
    let mcfg = ModelConfig {
        iterations: 20,
        checkpoint_every: 0,
        dp,
        ..ModelConfig::profile(Profile::Tiny)
    };
    let t = netshare_model::train(&mcfg, &m, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    t.write(&model).expect("write model");
    Trained {
        _dir: dir,
        encoded,
        model,
    }
}

fn flows_model() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| train(Records::Flows(ugr16_flows()), 3))
}

fn packets_model() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| train(Records::Packets(skype_packets()), 2))
}

/// A directory holding synthetic.parquet and synthetic.csv from the flows model (seed 0).
pub fn synthetic_flow_outputs() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| {
        let d = crate::tmp();
        run(flows_model(), &SynthConfig::default(), d.path());
        d
    })
    .path()
}

fn run(t: &Trained, cfg: &SynthConfig, out: &Path) -> SynthReport {
    let inputs = SynthInputs::from_dirs(&t.encoded, &t.model).expect("inputs");
    synthesize(&inputs, cfg, out).expect("synthesize").0
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

#[test]
fn same_inputs_and_seed_give_the_same_bytes_and_another_seed_differs() {
    let t = flows_model();
    let dir = crate::tmp();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for d in [&a, &b, &c] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let cfg = SynthConfig {
        seed: 11,
        batch_size: 100,
        ..SynthConfig::default()
    };
    run(t, &cfg, &a);
    run(t, &cfg, &b);
    run(t, &SynthConfig { seed: 12, ..cfg }, &c);
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        ["synth-report.json", "synthetic.csv", "synthetic.parquet"]
    );
    assert_eq!(fa, fb);
    assert_ne!(fa["synthetic.parquet"], fc["synthetic.parquet"]);
}

#[test]
fn flow_outputs_agree_with_each_other_and_the_report_adds_up() {
    let t = flows_model();
    let dir = crate::tmp();
    let report = run(t, &SynthConfig::default(), dir.path());
    let Records::Flows(table) = read_records(&dir.path().join("synthetic.parquet")).expect("read")
    else {
        panic!("flows expected")
    };
    assert!(!table.is_empty());
    assert_eq!(table.len() as u64, report.clean.kept_records);
    assert!(
        table.ts_us.windows(2).all(|w| w[0] <= w[1]),
        "sorted by time"
    );
    assert_eq!(report.out_of_order_records, 0);
    let lo = report.chunks.first().expect("chunks").t_min_us;
    let hi = report.chunks.last().expect("chunks").t_max_us;
    assert!(table.ts_us.iter().all(|t| (lo..=hi).contains(t)));
    let csv = std::fs::read(dir.path().join("synthetic.csv")).expect("csv");
    let (from_csv, _) =
        netshare_ingest::parse_flows_csv(&csv, &Default::default()).expect("ingest reads it");
    assert_eq!(from_csv, table);
    assert_eq!(report.chunks.len(), 3);
    for c in &report.chunks {
        let k = &c.clean;
        assert_eq!(
            k.decoded_records,
            k.duplicate_flow_records + k.outside_time_range + k.kept_records,
            "chunk {}",
            c.index
        );
        assert_eq!(c.sampled, (c.real_flows as f64).round() as u64);
    }
    assert_eq!(
        report.merge.sampled,
        report.chunks.iter().map(|c| c.sampled).sum::<u64>()
    );
    let on_disk: SynthReport = serde_json::from_slice(
        &std::fs::read(dir.path().join("synth-report.json")).expect("report"),
    )
    .expect("report parses");
    assert_eq!(on_disk, report);
}

/// Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs.
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    a.iter()
        .chain(&b)
        .map(|&x| {
            let fa = a.partition_point(|&y| y <= x) as f64 / a.len() as f64;
            let fb = b.partition_point(|&y| y <= x) as f64 / b.len() as f64;
            (fa - fb).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn calibration_gives_the_training_marginals_and_can_be_turned_off() {
    let t = flows_model();
    let (on, off) = (crate::tmp(), crate::tmp());
    let report = run(t, &SynthConfig::default(), on.path());
    let plain = SynthConfig {
        calibrate: false,
        ..SynthConfig::default()
    };
    let report_off = run(t, &plain, off.path());
    for c in &report.chunks {
        assert_eq!(
            c.calibrated,
            [
                "flow_start",
                "srcip/top",
                "dstip/top",
                "srcport/top",
                "dstport/top",
                "proto/top",
                "srcport/top|proto/top",
                "dstport/top|proto/top",
                "interarrival",
                "td",
                "pkt",
                "byt",
                "flow_length|classes",
                "pkt,td|pkt,byt|pkt",
                "pkt|classes",
                "time"
            ],
            "chunk {}",
            c.index
        );
    }
    assert!(report_off.chunks.iter().all(|c| c.calibrated.is_empty()));
    let flows = |d: &Path| match read_records(&d.join("synthetic.parquet")).expect("read") {
        Records::Flows(f) => f,
        Records::Packets(_) => panic!("flows expected"),
    };
    let (cal, raw, real) = (flows(on.path()), flows(off.path()), ugr16_flows());
    // The encoded records: each flow's first 8 (the trained model's max_flow_len).
    let mut seen: BTreeMap<_, usize> = BTreeMap::new();
    let kept: Vec<usize> = (0..real.len())
        .filter(|&i| {
            let k = (
                real.srcip[i],
                real.dstip[i],
                real.srcport[i],
                real.dstport[i],
                real.proto[i],
            );
            let n = seen.entry(k).or_insert(0);
            *n += 1;
            *n <= 8
        })
        .collect();
    // The class heads: each protocol takes its training share of the generated flows, so the
    // protocol mix of the records follows the training records' (by total variation).
    let shares = |f: &netshare_core::records::FlowColumns,
                  rows: &mut dyn Iterator<Item = usize>| {
        let mut by: BTreeMap<u8, f64> = BTreeMap::new();
        let mut n = 0.0;
        for i in rows {
            *by.entry(f.proto[i]).or_default() += 1.0;
            n += 1.0;
        }
        by.into_iter()
            .map(|(k, v)| (k, v / n))
            .collect::<BTreeMap<u8, f64>>()
    };
    let tv = |a: &BTreeMap<u8, f64>, b: &BTreeMap<u8, f64>| {
        a.keys()
            .chain(b.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|k| (a.get(k).unwrap_or(&0.0) - b.get(k).unwrap_or(&0.0)).abs())
            .sum::<f64>()
            / 2.0
    };
    let train_mix = shares(&real, &mut kept.iter().copied());
    let (tv_cal, tv_raw) = (
        tv(&shares(&cal, &mut (0..cal.len())), &train_mix),
        tv(&shares(&raw, &mut (0..raw.len())), &train_mix),
    );
    eprintln!("proto: total variation calibrated {tv_cal:.3}, uncalibrated {tv_raw:.3}");
    assert!(tv_cal < tv_raw, "proto: {tv_cal} vs {tv_raw}");
    // Measured: 0.033 (uncalibrated 0.185). Flows are whole, so record shares can differ
    // from flow shares where flows of one protocol run longer.
    assert!(
        tv_cal <= 0.1,
        "proto: total variation {tv_cal} to the training records"
    );
    type Col = fn(&netshare_core::records::FlowColumns, usize) -> f64;
    let cols: [(&str, Col); 3] = [
        ("td", |f, i| f.td[i]),
        ("pkt", |f, i| f.pkt[i] as f64),
        ("byt", |f, i| f.byt[i] as f64),
    ];
    for (name, get) in cols {
        let r: Vec<f64> = kept.iter().map(|&i| get(&real, i)).collect();
        let c: Vec<f64> = (0..cal.len()).map(|i| get(&cal, i)).collect();
        let u: Vec<f64> = (0..raw.len()).map(|i| get(&raw, i)).collect();
        let (ks_cal, ks_raw) = (ks(&c, &r), ks(&u, &r));
        eprintln!("{name}: KS calibrated {ks_cal:.3}, uncalibrated {ks_raw:.3}");
        assert!(ks_cal < ks_raw, "{name}: {ks_cal} vs {ks_raw}");
        // Measured: pkt 0.101 and td 0.061 (uncalibrated 0.439 and 0.371). The counts are
        // mapped within the strata of the flows' classes, so their marginal is the strata's
        // mixed by how many generated records each holds (0.038 when they were mapped over the
        // whole chunk). byt is the calibrated bytes per packet times the count, so its
        // marginal also depends on how the generator pairs counts with bytes inside a stratum,
        // which the 20-iteration model does poorly: 0.147 (uncalibrated 0.430).
        let bound = match name {
            "byt" => 0.25,
            "pkt" => 0.15,
            _ => 0.1,
        };
        assert!(
            ks_cal <= bound,
            "{name}: KS {ks_cal} to the training records"
        );
    }
    // Within a protocol and packet count, durations and bytes per packet follow the training
    // records of that protocol and count (the strata), not the trace's overall marginal. In
    // this trace ICMP flows have about 31 packets of 32 bytes, TCP flows 33 to 1,400 packets
    // of 42 to 216.
    type Pick = fn(u8, u64) -> bool;
    let cells: [(&str, Pick); 2] = [
        ("ICMP", |proto, _| proto == 1),
        ("TCP, at most 62 packets", |proto, p| proto == 6 && p <= 62),
    ];
    for (what, pick) in cells {
        for (name, get) in [cols[0], cols[2]] {
            let value = |f: &netshare_core::records::FlowColumns, i: usize| {
                if name == "byt" {
                    get(f, i) / f.pkt[i] as f64
                } else {
                    get(f, i)
                }
            };
            let sel = |f: &netshare_core::records::FlowColumns,
                       rows: &mut dyn Iterator<Item = usize>| {
                rows.filter(|&i| pick(f.proto[i], f.pkt[i]))
                    .map(|i| value(f, i))
                    .collect::<Vec<f64>>()
            };
            let r = sel(&real, &mut kept.iter().copied());
            let c = sel(&cal, &mut (0..cal.len()));
            let u = sel(&raw, &mut (0..raw.len()));
            let (ks_cal, ks_raw) = (ks(&c, &r), ks(&u, &r));
            let name = if name == "byt" {
                "bytes per packet"
            } else {
                name
            };
            eprintln!(
                "{what}, {name}: KS calibrated {ks_cal:.3} ({} records), uncalibrated {ks_raw:.3} ({}), training {}",
                c.len(),
                u.len(),
                r.len()
            );
            // Measured: ICMP 0.062 and 0.062 (uncalibrated 0.568 and 0.801); TCP 0.096 and
            // 0.202 (0.468 and 0.243). The TCP cell holds 43 calibrated records against 228:
            // two samples that size differ by a KS of 0.23 one time in twenty, so the bound
            // is 0.25 and the comparison with the uncalibrated output is the sharper check.
            // (Bytes per packet were ranked by the generated ratio before, 0.147; now by the
            // generated bytes, which on the held-out host-days halved the byte EMD.)
            assert!(ks_cal < ks_raw, "{what}, {name}: {ks_cal} vs {ks_raw}");
            assert!(
                ks_cal <= 0.25,
                "{what}, {name}: KS {ks_cal} to the training records"
            );
        }
    }
}

#[test]
fn packet_flows_take_the_training_flow_lengths() {
    let t = packets_model();
    let (on, off) = (crate::tmp(), crate::tmp());
    run(t, &SynthConfig::default(), on.path());
    let plain = SynthConfig {
        calibrate: false,
        ..SynthConfig::default()
    };
    run(t, &plain, off.path());
    // Packets per five-tuple: the capture's flows, each flow's first 8 packets per chunk as
    // encoded (chunks.json's flow lengths hold them).
    let per_flow = |d: &Path| {
        let Records::Packets(p) = read_records(&d.join("synthetic.parquet")).expect("read") else {
            panic!("packets expected")
        };
        let mut n: BTreeMap<_, f64> = BTreeMap::new();
        for i in 0..p.len() {
            let k = (
                p.srcip[i],
                p.dstip[i],
                p.srcport[i],
                p.dstport[i],
                p.proto[i],
            );
            *n.entry(k).or_default() += 1.0;
        }
        n.into_values().collect::<Vec<f64>>()
    };
    let chunks = netshare_encode::read_chunks(&t.encoded.join("chunks.json")).expect("chunks");
    let mut train = Vec::new();
    for c in &chunks.chunks {
        let fl = c.flow_lengths.as_ref().expect("flow lengths recorded");
        for s in &fl.strata {
            for &(len, n) in &s.lengths {
                train.extend(std::iter::repeat_n(len as f64, n as usize));
            }
        }
    }
    let (cal, raw) = (per_flow(on.path()), per_flow(off.path()));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ks_cal, ks_raw) = (ks(&cal, &train), ks(&raw, &train));
    eprintln!(
        "packets per flow: KS calibrated {ks_cal:.3}, uncalibrated {ks_raw:.3}; mean {:.2}, {:.2}, training {:.2}",
        mean(&cal),
        mean(&raw),
        mean(&train)
    );
    // Measured: KS 0.059, mean 4.03 (uncalibrated 0.410 and 6.08; training 3.77). Flows that
    // share a five-tuple across the chunk boundary count as one here, as they do in a reader.
    assert!(ks_cal < ks_raw, "{ks_cal} vs {ks_raw}");
    assert!(
        ks_cal <= 0.15,
        "packets per flow: KS {ks_cal} to the training lengths"
    );
}

#[test]
fn packet_synthesis_writes_a_capture_our_ingest_reads_back() {
    let t = packets_model();
    let dir = crate::tmp();
    let cfg = SynthConfig {
        formats: Some(vec![OutputFormat::Pcapng, OutputFormat::Csv]),
        link: LinkType::Raw,
        ..SynthConfig::default()
    };
    let report = run(t, &cfg, dir.path());
    let Records::Packets(table) =
        read_records(&dir.path().join("synthetic.parquet")).expect("read")
    else {
        panic!("packets expected")
    };
    assert!(!table.is_empty());
    let pcap = std::fs::read(dir.path().join("synthetic.pcapng")).expect("pcapng");
    let (back, _) = netshare_ingest::read_packets_from_bytes(&pcap).expect("ingest");
    // What a reader sees: lengths raised to fit headers, ports 0 where no L4 header is written.
    let mut want = with_min_lengths(&table);
    for i in 0..want.len() {
        if want.off[i] != 0 || !matches!(want.proto[i], 6 | 17) {
            want.srcport[i] = 0;
            want.dstport[i] = 0;
        }
    }
    assert_eq!(back, want);
    let packets = report
        .outputs
        .iter()
        .find_map(|o| o.packets.clone())
        .expect("stats");
    assert_eq!(packets.packets, table.len() as u64);
    assert!(dir.path().join("synthetic.csv").is_file());
    if crate::tshark::have("tshark") && crate::tshark::have("capinfos") {
        let path = dir.path().join("synthetic.pcapng");
        crate::tshark::assert_clean_capture(&path, table.len() as u64, "synthetic pcapng");
    }
}

#[test]
fn store_mode_writes_the_named_outputs_and_caches_the_run() {
    let t = flows_model();
    let dir = crate::tmp();
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut inputs: BTreeMap<String, Digest> = BTreeMap::new();
    for d in [&t.encoded, &t.model] {
        for e in std::fs::read_dir(d).expect("list") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            inputs.insert(name, store.put_file(&e.path()).expect("put"));
        }
    }
    // A records input only lends its dialect to the CSV.
    let rec = dir.path().join("records.parquet");
    write_records(
        &rec,
        &Records::Flows(ugr16_flows()),
        &[(netshare_core::records::META_DIALECT, "ugr16")],
    )
    .expect("records");
    inputs.insert("records".into(), store.put_file(&rec).expect("put"));
    let raw = serde_json::json!({"seed": 3, "scale": 0.5});
    let body = netshare_synth::stage::body;
    let first = run_stage(&store, &netshare_synth::STAGE, &raw, &inputs, body).expect("run");
    assert!(!first.cached);
    let names: Vec<&String> = first.manifest.outputs.keys().collect();
    assert_eq!(
        names,
        ["synth-report.json", "synthetic.csv", "synthetic.parquet"]
    );
    let csv = store.blob_path(&first.manifest.outputs["synthetic.csv"].digest);
    let head = std::fs::read_to_string(csv).expect("csv");
    assert!(
        head.starts_with("te,td,sa,da,"),
        "ugr16 dialect: {}",
        &head[..40]
    );
    let again = run_stage(&store, &netshare_synth::STAGE, &raw, &inputs, body).expect("rerun");
    assert!(again.cached);
    let bad = serde_json::json!({"scael": 1.0});
    assert!(run_stage(&store, &netshare_synth::STAGE, &bad, &inputs, body).is_err());
}

/// A private model's synthesis generates each chunk's released (noisy) flow count, never the
/// private count in chunks.json, and its report shows the released one.
#[test]
fn a_private_models_synthesis_uses_the_released_flow_counts() {
    let dp = netshare_model::DpConfig {
        clip_norm: 1.0,
        noise_multiplier: Some(1.0),
        target_epsilon: None,
        delta: 1e-5,
        count_noise: 50.0,
    };
    let t = train_with(Records::Flows(ugr16_flows()), 2, Some(dp));
    let model: netshare_model::ModelFile =
        serde_json::from_slice(&std::fs::read(t.model.join("model.json")).expect("model.json"))
            .expect("parse");
    let ledger = model.privacy.expect("a private model has a ledger");
    let chunks = netshare_encode::read_chunks(&t.encoded.join("chunks.json")).expect("chunks");
    let out = crate::tmp();
    let r = run(&t, &SynthConfig::default(), out.path());
    assert_eq!(r.chunks.len(), ledger.chunks.len());
    let mut differs = false;
    for (c, l) in r.chunks.iter().zip(&ledger.chunks) {
        assert_eq!(c.real_flows as u64, l.released_examples);
        assert_eq!(
            c.sampled, l.released_examples,
            "scale 1 samples the released count"
        );
        differs |= chunks.chunks[c.index].n_flows as u64 != l.released_examples;
    }
    assert!(
        differs,
        "with noise of std 50 some released count differs from the private one"
    );
}

/// Flows whose source or destination port is one of the encoder's frequent ports and was
/// never seen in that direction with the flow's (frequent) protocol in `real`.
fn unseen_port_protocol_pairs(
    real: &netshare_core::records::FlowColumns,
    syn: &netshare_core::records::FlowColumns,
    ports: &[u32],
    protos: &[u32],
) -> usize {
    let key = |f: &netshare_core::records::FlowColumns, i: usize| {
        (
            f.srcip[i],
            f.dstip[i],
            f.srcport[i],
            f.dstport[i],
            f.proto[i],
        )
    };
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..real.len() {
        let (_, _, s, d, p) = key(real, i);
        seen.insert((0, p, s));
        seen.insert((1, p, d));
    }
    let flows: std::collections::BTreeSet<_> = (0..syn.len()).map(|i| key(syn, i)).collect();
    flows
        .into_iter()
        .filter(|&(_, _, s, d, p)| {
            protos.contains(&u32::from(p))
                && [(0, s), (1, d)].into_iter().any(|(side, port)| {
                    ports.contains(&u32::from(port)) && !seen.contains(&(side, p, port))
                })
        })
        .count()
}

/// The flow model's encoded directory without the protocol and port pairs (as an encode
/// before stage 15 wrote it), in a temporary directory.
fn without_class_pairs(t: &Trained) -> tempfile::TempDir {
    let dir = crate::tmp();
    for e in std::fs::read_dir(&t.encoded).expect("list") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dir.path().join(e.file_name())).expect("copy");
    }
    let path = dir.path().join("chunks.json");
    let mut chunks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
    let mut removed = 0;
    for c in chunks["chunks"].as_array_mut().expect("chunks") {
        removed += usize::from(
            c.as_object_mut()
                .expect("chunk")
                .remove("class_pairs")
                .is_some(),
        );
    }
    assert!(removed > 0, "the encode recorded pairs");
    std::fs::write(&path, serde_json::to_vec(&chunks).expect("json")).expect("write");
    dir
}

#[test]
fn calibrated_frequent_ports_keep_to_the_protocols_they_were_seen_with() {
    let t = flows_model();
    let (on, off) = (crate::tmp(), crate::tmp());
    run(t, &SynthConfig::default(), on.path());
    let old = without_class_pairs(t);
    let inputs = SynthInputs::from_dirs(old.path(), &t.model).expect("inputs");
    synthesize(&inputs, &SynthConfig::default(), off.path()).expect("synthesize");
    let enc = netshare_encode::FittedEncoder::read(&t.encoded.join("encoder.json")).expect("read");
    let top = |c: &netshare_encode::fields::DiscreteCodec| match c {
        netshare_encode::fields::DiscreteCodec::TopBits { top, .. } => top.clone(),
        other => panic!("top values and bits expected, not {other:?}"),
    };
    let (ports, protos) = (top(&enc.ports), top(&enc.proto));
    let flows = |d: &Path| match read_records(&d.join("synthetic.parquet")).expect("read") {
        Records::Flows(f) => f,
        Records::Packets(_) => panic!("flows expected"),
    };
    let real = ugr16_flows();
    let kept = unseen_port_protocol_pairs(&real, &flows(on.path()), &ports, &protos);
    let free = unseen_port_protocol_pairs(&real, &flows(off.path()), &ports, &protos);
    eprintln!(
        "flows with a frequent port on an unseen protocol: with the pairs {kept}, without {free}"
    );
    // Measured: 26 with the pairs, 140 without. The pairs rule it out for the frequent
    // classes; a port or protocol decoded from its bits (a 20-step model's bits are close to
    // random) can still meet one.
    assert!(kept * 4 <= free, "with the pairs {kept}, without {free}");
}
