//! Captures written by the synthesiser, read back by our own ingest: every field survives.

use netshare_core::records::{PacketColumns, Records, TraceKind};
use netshare_synth::write::{LinkType, OutputFormat, PacketOptions, WriteOptions, write_all};

use crate::{at, edge_case_packets, skype_packets, tmp, with_min_lengths};

const CAPTURES: [OutputFormat; 3] = [
    OutputFormat::Pcap,
    OutputFormat::PcapNs,
    OutputFormat::Pcapng,
];

fn write(t: &PacketColumns, format: OutputFormat, packets: PacketOptions) -> Vec<u8> {
    let dir = tmp();
    let path = at(dir.path(), &format!("out.{}", format.extension()));
    let opts = WriteOptions {
        packets,
        ..WriteOptions::default()
    };
    let rec = Records::Packets(t.clone());
    let summary = write_all(&path, format, TraceKind::Packets, &opts, [&rec]).expect("write");
    assert_eq!(summary.records, t.len() as u64);
    std::fs::read(&path).expect("read back")
}

fn read(bytes: &[u8]) -> PacketColumns {
    let (t, report) = netshare_ingest::read_packets_from_bytes(bytes).expect("ingest reads it");
    assert_eq!(
        report.records_read,
        report.records_kept,
        "{}",
        report.summary()
    );
    t
}

#[test]
fn every_field_of_edge_case_packets_survives_each_format_link_and_capture_length() {
    let t = edge_case_packets();
    let want = with_min_lengths(&t);
    for format in CAPTURES {
        for link in [LinkType::Ethernet, LinkType::Raw] {
            for headers_only in [false, true] {
                let opts = PacketOptions {
                    link,
                    headers_only,
                    ..PacketOptions::default()
                };
                let got = read(&write(&t, format, opts));
                assert_eq!(got, want, "{format:?} {link:?} headers_only={headers_only}");
            }
        }
    }
}

#[test]
fn real_skype_records_survive_pcapng_with_raw_links_and_pcap_with_ethernet() {
    let t = skype_packets();
    let want = with_min_lengths(&t);
    let raw = PacketOptions {
        link: LinkType::Raw,
        ..PacketOptions::default()
    };
    assert_eq!(read(&write(&t, OutputFormat::Pcapng, raw)), want);
    assert_eq!(
        read(&write(&t, OutputFormat::Pcap, PacketOptions::default())),
        want
    );
}

#[test]
fn header_only_captures_are_small_but_keep_wire_lengths() {
    let t = skype_packets();
    let full = write(&t, OutputFormat::Pcap, PacketOptions::default());
    let short = write(
        &t,
        OutputFormat::Pcap,
        PacketOptions {
            headers_only: true,
            ..PacketOptions::default()
        },
    );
    assert!(
        short.len() * 3 < full.len(),
        "{} vs {}",
        short.len(),
        full.len()
    );
    assert_eq!(read(&short).pkt_len, with_min_lengths(&t).pkt_len);
}

#[test]
fn equal_records_give_equal_bytes() {
    let t = edge_case_packets();
    for format in CAPTURES {
        assert_eq!(
            write(&t, format, PacketOptions::default()),
            write(&t, format, PacketOptions::default()),
            "{format:?}"
        );
    }
}

#[test]
fn a_time_before_1970_is_an_error_naming_the_record() {
    let mut t = edge_case_packets();
    t.time_us[3] = -5;
    let dir = tmp();
    let path = at(dir.path(), "x.pcap");
    let err = write_all(
        &path,
        OutputFormat::Pcap,
        TraceKind::Packets,
        &WriteOptions::default(),
        [&Records::Packets(t)],
    )
    .expect_err("negative time");
    let msg = err.to_string();
    assert!(msg.contains("record 3") && msg.contains("x.pcap"), "{msg}");
}

#[test]
fn flows_cannot_be_written_as_captures() {
    let dir = tmp();
    let err = write_all(
        &at(dir.path(), "x.pcapng"),
        OutputFormat::Pcapng,
        TraceKind::Flows,
        &WriteOptions::default(),
        std::iter::empty(),
    )
    .expect_err("flows into pcapng");
    assert!(err.to_string().contains("flows"), "{err}");
}
