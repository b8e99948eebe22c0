//! Benchmark of the encode stage on 1M flow records tiled from the real UGR16 traces:
//! end-to-end encode (records/s), IP2Vec training alone, encode without embeddings, decoding
//! and writing the artifacts. Prints a table; run in release mode:
//!
//! `cargo run --release -p netshare-encode --example bench_encode -- --records 1000000 --repeat 3`

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use netshare_core::records::{FlowColumns, Records};
use netshare_encode::config::{DiscreteEncoding, EncodeConfig};
use netshare_encode::{Encoded, encode, ip2vec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Encode-stage benchmark on real UGR16 flows tiled to the requested size.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Number of flow records.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Repetitions of each measurement (the table shows the best and the median).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Encode config as inline JSON (default: the stage's defaults).
    #[arg(long)]
    config_json: Option<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg: EncodeConfig = match &args.config_json {
        Some(j) => serde_json::from_str(j).context("--config-json")?,
        None => EncodeConfig::default(),
    };
    let t = Instant::now();
    let rows = fixtures::flows::ugr16_tiled(args.records).context("building records")?;
    let mut flows = FlowColumns::with_capacity(rows.len());
    for r in rows {
        flows.push(r);
    }
    let records = Records::Flows(flows);
    let n = records.len();
    println!(
        "built {n} flow records from the UGR16 traces in {:.2} s (threads: {})",
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );

    let mut table: Vec<(String, Vec<f64>, Option<usize>)> = Vec::new();
    let mut last: Option<Encoded> = None;
    let mut times = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        last = Some(encode(&records, None, &cfg)?);
        times.push(t.elapsed().as_secs_f64());
    }
    table.push(("encode (default config)".into(), times, Some(n)));
    let e = last.context("repeat must be at least 1")?;

    let bits = EncodeConfig {
        ports: DiscreteEncoding::Bits,
        proto: DiscreteEncoding::Bits,
        ..cfg.clone()
    };
    let mut times = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        encode(&records, None, &bits)?;
        times.push(t.elapsed().as_secs_f64());
    }
    table.push((
        "encode, ports/proto as bits (no IP2Vec)".into(),
        times,
        Some(n),
    ));

    // IP2Vec alone, on the same sentences the encoder builds.
    let Records::Flows(f) = &records else {
        unreachable!("built as flows above")
    };
    let mut ports: Vec<u16> = f.srcport.iter().chain(&f.dstport).copied().collect();
    ports.sort_unstable();
    ports.dedup();
    let mut protos: Vec<u8> = f.proto.clone();
    protos.sort_unstable();
    protos.dedup();
    let pid = |p: u16| ports.binary_search(&p).unwrap_or(0) as u32;
    let rid = |p: u8| (ports.len() + protos.binary_search(&p).unwrap_or(0)) as u32;
    let sentences: Vec<Vec<u32>> = (0..n)
        .map(|i| vec![pid(f.srcport[i]), pid(f.dstport[i]), rid(f.proto[i])])
        .collect();
    let mut times = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        ip2vec::train(
            &sentences,
            ports.len() + protos.len(),
            &cfg.embedding,
            &mut rng,
        );
        times.push(t.elapsed().as_secs_f64());
    }
    table.push((
        format!(
            "IP2Vec training ({} epochs, vocab {}+{})",
            cfg.embedding.epochs,
            ports.len(),
            protos.len()
        ),
        times,
        Some(n),
    ));

    let mut times = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        let mut decoded = 0;
        for (info, t) in e.chunks.chunks.iter().zip(&e.tensors) {
            let lengths: Vec<usize> = t
                .gen_flag
                .chunks(t.max_len)
                .map(|g| g.iter().filter(|&&x| x > 0.5).count())
                .collect();
            decoded += e
                .encoder
                .decode_chunk(info, &t.attributes, &t.features, &lengths)?
                .len();
        }
        anyhow::ensure!(
            decoded == e.report.encoded_records,
            "decoded {decoded} records"
        );
        times.push(t.elapsed().as_secs_f64());
    }
    table.push((
        "decode_chunk, all chunks (exact cosine NN)".into(),
        times,
        Some(e.report.encoded_records),
    ));

    let dir = tempfile::tempdir()?;
    let mut times = Vec::new();
    for _ in 0..args.repeat {
        let t = Instant::now();
        e.write(dir.path())?;
        times.push(t.elapsed().as_secs_f64());
    }
    let bytes: u64 = std::fs::read_dir(dir.path())?
        .filter_map(|x| x.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    table.push((
        format!("write artifacts ({:.1} MB)", bytes as f64 / 1e6),
        times,
        None,
    ));

    let r = &e.report;
    println!(
        "chunks {}, flows {}, max_flow_len {} ({:?}, data max {}), T {}, A {}, F {}, truncated flows {}",
        r.n_chunks,
        r.encoded_flows,
        r.max_flow_len,
        r.max_flow_len_source,
        r.data_max_flow_len,
        r.max_len,
        r.attribute_dim,
        r.feature_dim,
        r.truncated_flows
    );
    println!();
    println!(
        "| {:<48} | {:>9} | {:>9} | {:>12} |",
        "measurement", "best s", "median s", "records/s"
    );
    println!("|{:-<50}|{:->11}|{:->11}|{:->14}|", "", "", "", "");
    for (name, mut times, count) in table {
        times.sort_by(f64::total_cmp);
        let best = times[0];
        let median = times[times.len() / 2];
        let rate = count.map_or("".to_string(), |c| format!("{:.0}", c as f64 / best));
        println!("| {name:<48} | {best:>9.3} | {median:>9.3} | {rate:>12} |");
    }
    Ok(())
}
