//! Ingest benchmark: builds a large pcap by replaying the real captures with shifted times,
//! ingests it to Parquet end to end, runs `tshark -T fields` over the same file for the same
//! fields, and prints packets/s, peak RSS and the ratios.
//!
//! `cargo run --release -p netshare-ingest --example bench_ingest -- [--packets N]
//! [--snaplen S] [--dir DIR] [--repeat K] [--no-tshark]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;

/// Ingest benchmark against tshark.
#[derive(Parser, Debug)]
struct Args {
    /// Frames in the benchmark pcap.
    #[arg(long, default_value_t = 10_000_000)]
    packets: u64,
    /// Snap lengths to build and measure (65535 = whole frames; 96 = header-only, like CAIDA).
    #[arg(long, value_delimiter = ',', default_value = "96,65535")]
    snaplen: Vec<u32>,
    /// Folder for the benchmark pcap and outputs (never committed).
    #[arg(long, default_value = "target/bench-ingest")]
    dir: PathBuf,
    /// Runs of our ingest per file (the machine is shared: repeat and report each).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Skip the tshark comparison.
    #[arg(long)]
    no_tshark: bool,
    /// Internal: ingest FILE into OUT and print `elapsed_s peak_rss_kib`.
    #[arg(long, num_args = 2, value_names = ["FILE", "OUT"], hide = true)]
    child: Option<Vec<PathBuf>>,
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of this process (from /proc, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(0.0)
}

fn child(file: &Path, out: &Path) -> Result<()> {
    let t = Instant::now();
    let report = netshare_ingest::ingest_files(
        &[file.to_path_buf()],
        &netshare_ingest::IngestConfig::default(),
        out,
    )?;
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{dt} {} {} {}",
        vm_hwm_kib(),
        report.records_read,
        cpu_seconds()
    );
    Ok(())
}

struct Measure {
    seconds: f64,
    cpu: f64,
    rss_kib: u64,
}

fn ours(file: &Path, out: &Path) -> Result<(Measure, u64)> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let o = Command::new(exe)
        .arg("--child")
        .arg(file)
        .arg(out)
        .output()
        .context("running the ingest child")?;
    if !o.status.success() {
        bail!(
            "ingest child failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let s = String::from_utf8_lossy(&o.stdout);
    let v: Vec<&str> = s.split_whitespace().collect();
    if v.len() != 4 {
        bail!("unexpected child output {s:?}");
    }
    Ok((
        Measure {
            seconds: v[0].parse()?,
            cpu: v[3].parse()?,
            rss_kib: v[1].parse()?,
        },
        v[2].parse()?,
    ))
}

const TSHARK_FIELDS: [&str; 14] = [
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "ip.proto",
    "ip.len",
    "ip.dsfield",
    "ip.id",
    "ip.flags",
    "ip.frag_offset",
    "ip.ttl",
];

fn tshark(file: &Path) -> Result<Measure> {
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v")
        .arg("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .arg("-T")
        .arg("fields");
    for f in TSHARK_FIELDS {
        cmd.arg("-e").arg(f);
    }
    cmd.stdout(std::process::Stdio::null());
    let t = Instant::now();
    let o = cmd
        .output()
        .context("running /usr/bin/time -v tshark (apt-get install tshark time)")?;
    let seconds = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("tshark failed: {err}");
    }
    let field = |name: &str| -> f64 {
        err.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let rss_kib = field("Maximum resident set size (kbytes):") as u64;
    let cpu = field("User time (seconds):") + field("System time (seconds):");
    Ok(Measure {
        seconds,
        cpu,
        rss_kib,
    })
}

fn main() -> Result<()> {
    let a = Args::parse();
    if let Some(c) = &a.child {
        return child(&c[0], &c[1]);
    }
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let sources: Vec<PathBuf> = [
        "pcap/skype.pcap",
        "pcap/teams.pcap",
        "pcap/alexa-app.pcap",
        "pcap/WebattackXSS.pcap",
    ]
    .iter()
    .filter_map(|r| fixtures::real_trace(r))
    .collect();
    if sources.is_empty() {
        bail!("no real captures found (fixtures data or ../shared/data)");
    }
    let src_refs: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
    println!(
        "| input | frames | file MiB | tool | run | wall s | frames/s (wall) | CPU s | frames/CPU-s | peak RSS MiB |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for &snap in &a.snaplen {
        let file = a.dir.join(format!("replay-{}-snap{snap}.pcap", a.packets));
        if !file.is_file() {
            eprintln!("building {} ...", file.display());
            fixtures::captures::write_replay_pcap(&file, &src_refs, a.packets, snap)
                .with_context(|| format!("building {}", file.display()))?;
        }
        let mib = std::fs::metadata(&file)?.len() as f64 / (1 << 20) as f64;
        let out = a
            .dir
            .join(format!("replay-{}-snap{snap}.parquet", a.packets));
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        let mut rss = 0;
        for run in 1..=a.repeat {
            let (m, frames) = ours(&file, &out)?;
            println!(
                "| snap {snap} | {frames} | {mib:.0} | netshare-ingest | {run} | {:.2} | {:.2}M | {:.2} | {:.2}M | {:.0} |",
                m.seconds,
                frames as f64 / m.seconds / 1e6,
                m.cpu,
                frames as f64 / m.cpu / 1e6,
                m.rss_kib as f64 / 1024.0
            );
            best = best.min(m.seconds);
            best_cpu = best_cpu.min(m.cpu);
            rss = rss.max(m.rss_kib);
        }
        let ts = if a.no_tshark {
            None
        } else {
            let m = tshark(&file)?;
            println!(
                "| snap {snap} | {} | {mib:.0} | tshark -T fields | 1 | {:.2} | {:.3}M | {:.2} | {:.3}M | {:.0} |",
                a.packets,
                m.seconds,
                a.packets as f64 / m.seconds / 1e6,
                m.cpu,
                a.packets as f64 / m.cpu / 1e6,
                m.rss_kib as f64 / 1024.0
            );
            Some(m)
        };
        summary.push((snap, best, best_cpu, rss, ts));
    }
    println!();
    println!(
        "| input | ours best frames/s | ours peak RSS MiB | tshark frames/s | wall ratio | CPU ratio | RSS ratio (tshark/ours) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (snap, best, best_cpu, rss, ts) in summary {
        let ours_pps = a.packets as f64 / best;
        match ts {
            Some(t) => println!(
                "| snap {snap} | {:.2}M | {:.0} | {:.3}M | {:.1}x | {:.1}x | {:.1}x |",
                ours_pps / 1e6,
                rss as f64 / 1024.0,
                a.packets as f64 / t.seconds / 1e6,
                t.seconds / best,
                t.cpu / best_cpu,
                t.rss_kib as f64 / rss.max(1) as f64
            ),
            None => println!(
                "| snap {snap} | {:.2}M | {:.0} | - | - | - | - |",
                ours_pps / 1e6,
                rss as f64 / 1024.0
            ),
        }
    }
    Ok(())
}
