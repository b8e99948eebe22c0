//! Benchmark of synthesis throughput: decode-and-write of 1M flows (UGR16-shaped encoder) and
//! of 1M packets (skype-shaped encoder) from generated activations, and, separately, the time
//! the model takes to sample them.
//!
//! Run in release mode: `cargo run --release -p netshare-synth --example bench_synth`
//! (options: `--flows N --packets N --sample N --repeat R`). The activations are random draws
//! shaped by the fitted encoder's layout, made before each timed phase, so only decoding,
//! cleaning and writing are measured. The machine may be shared: each figure is the best of
//! `--repeat` runs.

use std::path::Path;
use std::time::Instant;

use netshare_core::layout::{Activation, Layout, Segment};
use netshare_core::records::{Records, TraceKind};
use netshare_encode::{EncodeConfig, Encoded, FittedEncoder};
use netshare_model::{ModelConfig, Profile, TrainOptions, TrainedModel};
use netshare_synth::generate::decode_batch;
use netshare_synth::merge::{CleanCounts, Duplicates, clean_chunk};
use netshare_synth::write::{OutputFormat, Sink, WriteOptions};

/// A tiny deterministic generator (xorshift64*), so the benchmark needs no RNG crate.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32) / (1u64 << 24) as f32
    }
}

fn fill(segs: &[Segment], rng: &mut Rng, out: &mut Vec<f32>, small_interarrival: bool) {
    for s in segs {
        match s.activation {
            Activation::Softmax => {
                let start = out.len();
                let mut sum = 0.0;
                for _ in 0..s.dim {
                    let v = rng.next_f32() + 1e-3;
                    sum += v;
                    out.push(v);
                }
                for v in &mut out[start..] {
                    *v /= sum;
                }
            }
            Activation::Sigmoid if small_interarrival && s.field == "interarrival" => {
                out.push(rng.next_f32() * 0.3)
            }
            Activation::Sigmoid => out.push(rng.next_f32()),
            Activation::Tanh => (0..s.dim).for_each(|_| out.push(rng.next_f32() * 2.0 - 1.0)),
        }
    }
}

struct Batch {
    attributes: Vec<f32>,
    features: Vec<f32>,
    lengths: Vec<usize>,
}

fn batch(layout: &Layout, max_len: usize, n: usize, one_record: bool, rng: &mut Rng) -> Batch {
    let mut attributes = Vec::with_capacity(n * layout.attribute_dim());
    let mut features = Vec::with_capacity(n * max_len * layout.feature_dim());
    let mut lengths = Vec::with_capacity(n);
    for _ in 0..n {
        fill(&layout.attributes, rng, &mut attributes, false);
        let len = if one_record {
            1
        } else {
            1 + (rng.next_f32() * max_len as f32) as usize % max_len
        };
        for t in 0..max_len {
            let start = features.len();
            fill(&layout.features, rng, &mut features, true);
            if t >= len {
                features[start..].fill(0.0);
            }
        }
        lengths.push(len);
    }
    Batch {
        attributes,
        features,
        lengths,
    }
}

fn encode(records: Records, max_flow_len: usize) -> Encoded {
    let cfg = EncodeConfig {
        n_chunks: Some(1),
        max_flow_len: Some(max_flow_len),
        ..EncodeConfig::default()
    };
    netshare_encode::encode(&records, None, &cfg).expect("encode")
}

#[derive(Default, Clone, Copy)]
struct Phases {
    decode: f64,
    clean: f64,
    write: f64,
    records: u64,
}

/// Decodes `n_records` records in chunks of `chunk_flows` flows and writes them to `formats`.
fn run(
    enc: &FittedEncoder,
    info: &netshare_encode::ChunkInfo,
    n_records: usize,
    one_record: bool,
    formats: &[OutputFormat],
    dir: &Path,
) -> Phases {
    let layout = enc.layout();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sinks: Vec<Sink> = formats
        .iter()
        .map(|f| {
            let path = dir.join(format!("bench.{}", f.extension()));
            Sink::create(&path, *f, enc.kind, &WriteOptions::default()).expect("sink")
        })
        .collect();
    let mut p = Phases::default();
    let mut produced = 0usize;
    let chunk_records = 100_000;
    let mut counts = CleanCounts::default();
    while produced < n_records {
        let mut records = match enc.kind {
            TraceKind::Flows => Records::Flows(Default::default()),
            TraceKind::Packets => Records::Packets(Default::default()),
        };
        let mut flow_of = Vec::new();
        let mut flows = 0;
        while records.len() < chunk_records.min(n_records - produced) {
            let b = batch(&layout, enc.max_len, 4096, one_record, &mut rng);
            let t0 = Instant::now();
            decode_batch(
                enc,
                info,
                &b.attributes,
                &b.features,
                &b.lengths,
                flows,
                &mut records,
                &mut flow_of,
            )
            .expect("decode");
            p.decode += t0.elapsed().as_secs_f64();
            flows += b.lengths.len();
        }
        produced += records.len();
        let t0 = Instant::now();
        let kept = clean_chunk(
            &records,
            &flow_of,
            &[],
            Duplicates::Drop,
            i64::MIN,
            i64::MAX,
            &mut counts,
        )
        .expect("clean");
        p.clean += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for s in &mut sinks {
            s.write(&kept).expect("write");
        }
        p.write += t0.elapsed().as_secs_f64();
    }
    let t0 = Instant::now();
    for s in sinks {
        s.finish().expect("finish");
    }
    p.write += t0.elapsed().as_secs_f64();
    p.records = counts.kept_records;
    p
}

fn best(r: usize, mut f: impl FnMut() -> Phases) -> Phases {
    let mut out: Option<Phases> = None;
    for _ in 0..r {
        let p = f();
        let total = p.decode + p.clean + p.write;
        if out.is_none_or(|o| total < o.decode + o.clean + o.write) {
            out = Some(p);
        }
    }
    out.expect("at least one repeat")
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let n_flows = arg("--flows", 1_000_000);
    let n_packets = arg("--packets", 1_000_000);
    let n_sample = arg("--sample", 20_000);
    let repeat = arg("--repeat", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("netshare-synth bench: {threads} threads, best of {repeat}\n");

    let flows = fixtures::real_trace("netflow/ugr16-netshare-1k.csv").expect("ugr16 trace");
    let bytes = std::fs::read(&flows).expect("read");
    let (flow_table, _) =
        netshare_ingest::parse_flows_csv(&bytes, &Default::default()).expect("ingest");
    let fenc = encode(Records::Flows(flow_table), 1);
    let skype = fixtures::real_trace("pcap/skype.pcap").expect("skype trace");
    let (pkt_table, _) =
        netshare_ingest::read_packets_from_bytes(&std::fs::read(&skype).expect("read"))
            .expect("ingest");
    let penc = encode(Records::Packets(pkt_table), 20);

    println!(
        "{:<44} {:>10} {:>8} {:>8} {:>8} {:>12}",
        "decode-and-write", "records", "decode s", "clean s", "write s", "records/s"
    );
    let cases: [(&str, &Encoded, usize, bool, Vec<OutputFormat>); 4] = [
        (
            "flows -> parquet + csv (netshare)",
            &fenc,
            n_flows,
            true,
            vec![OutputFormat::Parquet, OutputFormat::Csv],
        ),
        (
            "flows -> parquet",
            &fenc,
            n_flows,
            true,
            vec![OutputFormat::Parquet],
        ),
        (
            "packets -> parquet + pcap",
            &penc,
            n_packets,
            false,
            vec![OutputFormat::Parquet, OutputFormat::Pcap],
        ),
        (
            "packets -> pcap",
            &penc,
            n_packets,
            false,
            vec![OutputFormat::Pcap],
        ),
    ];
    for (name, e, n, one, formats) in &cases {
        let info = &e.chunks.chunks[0];
        let p = best(repeat, || {
            run(&e.encoder, info, *n, *one, formats, dir.path())
        });
        let total = p.decode + p.clean + p.write;
        println!(
            "{:<44} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>12.0}",
            name,
            p.records,
            p.decode,
            p.clean,
            p.write,
            p.records as f64 / total
        );
    }

    println!(
        "\n{:<44} {:>10} {:>8} {:>8} {:>12}",
        "model sampling (untrained weights)", "flows", "attr s", "feat s", "flows/s"
    );
    for (name, e, profile) in [
        ("flows, tiny profile", &fenc, Profile::Tiny),
        ("flows, default profile", &fenc, Profile::Default),
        ("packets (T=20), default profile", &penc, Profile::Default),
    ] {
        let edir = dir.path().join("enc");
        let mdir = dir.path().join("model");
        std::fs::create_dir_all(&edir).expect("mkdir");
        std::fs::create_dir_all(&mdir).expect("mkdir");
        e.write(&edir).expect("write encoded");
        let m = netshare_model::Encoded::from_dir(&edir).expect("encoded");
        let cfg = ModelConfig {
            iterations: 1,
            checkpoint_every: 0,
            ..ModelConfig::profile(profile)
        };
        let t = netshare_model::train(&cfg, &m, &TrainOptions::default())
            .expect("train")
            .expect("not stopped");
        t.write(&mdir).expect("write model");
        let model = TrainedModel::load(&mdir).expect("load");
        let t0 = Instant::now();
        let attrs = model.sample_attributes(0, n_sample, 1);
        let ta = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let mut tf = 0.0;
        for chunk in attrs.chunks(4096 * model.attr_dim()) {
            let _ = model.sample_features(0, chunk, 2);
            tf = t0.elapsed().as_secs_f64();
        }
        println!(
            "{:<44} {:>10} {:>8.2} {:>8.2} {:>12.0}",
            name,
            n_sample,
            ta,
            tf,
            n_sample as f64 / (ta + tf)
        );
    }
}
