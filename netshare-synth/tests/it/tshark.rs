//! tshark and capinfos read our captures: zero malformed packets, zero checksum errors, and the
//! packet count we wrote. Skipped with a message when tshark is not installed (CI installs it).

use std::path::Path;
use std::process::Command;

use netshare_core::records::{PacketColumns, Records, TraceKind};
use netshare_synth::write::{LinkType, OutputFormat, PacketOptions, WriteOptions, write_all};

use crate::{at, edge_case_packets, skype_packets, tmp};

pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        netshare_core::skip::note_skip(
            "netshare-synth tshark test",
            &format!("{tool} is not installed (apt-get install tshark)"),
        );
    }
    ok
}

/// The rows of `tshark -z expert` in the Malformed or Checksum groups, and tshark's stderr
/// complaints about the file itself.
fn expert_problems(path: &Path) -> Vec<String> {
    let out = Command::new("tshark")
        .args(["-n", "-q", "-r"])
        .arg(path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-z",
            "expert",
        ])
        .output()
        .expect("run tshark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems: Vec<String> = stderr
        .lines()
        .filter(|l| !l.contains("Running as user") && !l.trim().is_empty())
        .map(|l| format!("stderr: {l}"))
        .collect();
    if !out.status.success() {
        problems.push(format!("tshark exited with {}", out.status));
    }
    for line in stdout.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() >= 3
            && cols[0].parse::<u64>().is_ok()
            && matches!(cols[1], "Malformed" | "Checksum")
        {
            problems.push(line.trim().to_string());
        }
    }
    problems
}

fn capinfos_count(path: &Path) -> u64 {
    let out = Command::new("capinfos")
        .args(["-c", "-M"])
        .arg(path)
        .output()
        .expect("run capinfos");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("capinfos said: {text}"))
}

fn tshark_count(path: &Path) -> u64 {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .expect("run tshark");
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}

/// Asserts that tshark finds nothing malformed and no bad checksum in `path`, and that
/// capinfos and tshark count `n` packets. Keeps the file on failure.
pub fn assert_clean_capture(path: &Path, n: u64, what: &str) {
    let problems = expert_problems(path);
    assert!(
        problems.is_empty(),
        "{what}: tshark reports {problems:#?} in {}",
        path.display()
    );
    assert_eq!(capinfos_count(path), n, "{what}: capinfos count");
    assert_eq!(tshark_count(path), n, "{what}: tshark count");
}

fn check(t: &PacketColumns, format: OutputFormat, packets: PacketOptions) {
    let dir = tmp();
    let path = at(dir.path(), &format!("out.{}", format.extension()));
    let opts = WriteOptions {
        packets,
        ..WriteOptions::default()
    };
    write_all(
        &path,
        format,
        TraceKind::Packets,
        &opts,
        [&Records::Packets(t.clone())],
    )
    .expect("write");
    let what = format!("{format:?} {packets:?}");
    let problems = expert_problems(&path);
    if !problems.is_empty() {
        let kept = dir.keep();
        panic!(
            "{what}: tshark reports {problems:#?} (file kept in {})",
            kept.display()
        );
    }
    assert_eq!(
        capinfos_count(&path),
        t.len() as u64,
        "{what}: capinfos count"
    );
    assert_eq!(tshark_count(&path), t.len() as u64, "{what}: tshark count");
}

#[test]
fn tshark_finds_no_malformed_packets_or_bad_checksums_in_edge_cases() {
    if !have("tshark") || !have("capinfos") {
        return;
    }
    let t = edge_case_packets();
    for format in [
        OutputFormat::Pcap,
        OutputFormat::PcapNs,
        OutputFormat::Pcapng,
    ] {
        for link in [LinkType::Ethernet, LinkType::Raw] {
            for headers_only in [false, true] {
                let p = PacketOptions {
                    link,
                    headers_only,
                    ..PacketOptions::default()
                };
                check(&t, format, p);
            }
        }
    }
}

#[test]
fn tshark_accepts_real_records_rewritten_as_packets() {
    if !have("tshark") || !have("capinfos") {
        return;
    }
    let t = skype_packets();
    check(&t, OutputFormat::Pcap, PacketOptions::default());
    // The paper's CAIDA shape: pcapng, raw IP, header-only with real wire lengths.
    check(
        &t,
        OutputFormat::Pcapng,
        PacketOptions {
            link: LinkType::Raw,
            headers_only: true,
            ..PacketOptions::default()
        },
    );
}
