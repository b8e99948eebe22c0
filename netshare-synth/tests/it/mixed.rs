//! A real capture with IPv4 and IPv6 traffic (fixtures' `quic_interop_V.pcapng`) through ingest,
//! encode, a tiny model and synthesis: the encoder gets the family attribute and 128-bit
//! addresses, the synthetic capture carries both families in about the real share, and tshark
//! reads it with no malformed packet and no checksum error.

use std::process::Command;

use netshare_core::records::{PacketColumns, Records, read_packets};
use netshare_encode::addr::{AddrCodec, IP_VERSION};
use netshare_encode::{EncodeConfig, FittedEncoder};
use netshare_model::{ModelConfig, Profile, TrainOptions};
use netshare_synth::generate::{PKT_LEN_BY_CLASS, SynthConfig, SynthInputs, synthesize};

use crate::tshark::{assert_clean_capture, have};

/// The real mixed capture as records (in capture order).
pub fn mixed_packets() -> PacketColumns {
    let path = fixtures::real_trace("pcap/quic_interop_V.pcapng").expect("embedded capture");
    let bytes = std::fs::read(&path).expect("read capture");
    let (t, report) = netshare_ingest::read_packets_from_bytes(&bytes).expect("ingest");
    // tshark counts 160 IPv4 and 86 IPv6 packets (netshare-ingest/tests/data).
    assert_eq!(
        (t.len(), report.records_ipv6),
        (246, 86),
        "{}",
        report.summary()
    );
    t
}

fn ipv6_share(t: &PacketColumns) -> f64 {
    t.srcip.iter().filter(|a| a.is_ipv6()).count() as f64 / t.len().max(1) as f64
}

/// The share of distinct five-tuples whose addresses are IPv6.
fn flow_ipv6_share(t: &PacketColumns) -> f64 {
    let keys: std::collections::HashSet<_> = (0..t.len())
        .map(|i| netshare_core::five_tuple_of!(t, i))
        .collect();
    keys.iter().filter(|k| k.srcip.is_ipv6()).count() as f64 / keys.len().max(1) as f64
}

/// Frames whose Ethernet type is IPv6, counted by tshark (independently of our reader).
fn tshark_ipv6_frames(path: &std::path::Path) -> usize {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-Y",
            "eth.type == 0x86dd",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ])
        .output()
        .expect("run tshark");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_mixed_capture_goes_through_the_pipeline_with_its_ipv6_share_and_clean_packets() {
    let real = mixed_packets();
    let dir = crate::tmp();
    let (encoded, model_dir, out) = (
        dir.path().join("encoded"),
        dir.path().join("model"),
        dir.path().join("out"),
    );
    for d in [&encoded, &model_dir, &out] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let cfg = EncodeConfig {
        n_chunks: Some(1),
        ..EncodeConfig::default()
    };
    let e = netshare_encode::encode(&Records::Packets(real.clone()), None, &cfg).expect("encode");
    e.write(&encoded).expect("write encoded");
    let enc = FittedEncoder::read(&encoded.join("encoder.json")).expect("encoder");
    assert!(
        matches!(enc.ips, AddrCodec::Wide(_)),
        "IPv6 in the records makes the address codec wide"
    );
    assert_eq!(enc.layout().attributes[0].field, IP_VERSION);

    let m = netshare_model::Encoded::from_dir(&encoded).expect("read encoded");
    // Longer than the tiny profile's 150 iterations, which leave the packet share further off.
    let mcfg = ModelConfig {
        iterations: 600,
        ..ModelConfig::profile(Profile::Tiny)
    };
    let trained = netshare_model::train(&mcfg, &m, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    trained.write(&model_dir).expect("write model");
    let inputs = SynthInputs::from_dirs(&encoded, &model_dir).expect("inputs");
    // Eight times the real flow count, so the shares below are not at the mercy of a hundred
    // packets' sampling noise (about 1.5 points of standard error at this size).
    let scfg = SynthConfig {
        scale: 8.0,
        ..SynthConfig::default()
    };
    let (report, _) = synthesize(&inputs, &scfg, &out).expect("synthesize");
    // Each family holds enough packets for a stratum of its own, so the packet lengths are
    // mapped within the class strata, and the report says so.
    let strata = &inputs.chunks.chunks[0].pkt_len_by_class;
    assert!(
        strata.iter().any(|s| !s.classes.is_empty()),
        "packet-length class strata: {strata:?}"
    );
    assert!(
        report.chunks[0]
            .calibrated
            .iter()
            .any(|h| h == PKT_LEN_BY_CLASS),
        "{:?}",
        report.chunks[0].calibrated
    );

    let syn = read_packets(&out.join("synthetic.parquet")).expect("synthetic records");
    assert_eq!(syn.len() as u64, report.clean.kept_records);
    assert!(syn.len() > 50, "{} synthetic packets", syn.len());
    for i in 0..syn.len() {
        assert_eq!(
            syn.srcip[i].is_ipv6(),
            syn.dstip[i].is_ipv6(),
            "row {i}: one family per record"
        );
    }
    // The family is a flow attribute: the share of five-tuples that are IPv6 is what the
    // generator learns directly (real: 56 of 112). The packet share also needs the flow lengths
    // per family, which the tiny model learns loosely. Measured with this setup, seeds 0-3
    // (model and synthesis): five-tuple share 55.7 / 53.9 / 56.5 / 56.5% against 50.0%, packet
    // share 23.8 / 25.8 / 30.3 / 27.7% against 35.0% (at 1,500 iterations 41.0 / 48.9 / 39.7 /
    // 40.5%). The bounds are 1.5x the worst seed's gap: they fail an output with one family
    // only, or with the families' flow counts or lengths far apart, but they are not the
    // 5-point match a better-trained model should give.
    let (rf, sf) = (flow_ipv6_share(&real), flow_ipv6_share(&syn));
    let (r, s) = (ipv6_share(&real), ipv6_share(&syn));
    eprintln!(
        "IPv6 share of five-tuples: real {rf:.3}, synthetic {sf:.3}; of packets: real {r:.3}, \
         synthetic {s:.3} ({} synthetic packets)",
        syn.len()
    );
    assert!(
        (rf - sf).abs() <= 0.10,
        "IPv6 share of five-tuples: real {rf:.3}, synthetic {sf:.3} (more than 10 points apart)"
    );
    assert!(
        (r - s).abs() <= 0.17,
        "IPv6 share of packets: real {r:.3}, synthetic {s:.3} (more than 17 points apart)"
    );

    if !have("tshark") || !have("capinfos") {
        return;
    }
    let pcap = out.join("synthetic.pcap");
    assert_clean_capture(&pcap, syn.len() as u64, "synthetic mixed capture");
    let v6 = syn.srcip.iter().filter(|a| a.is_ipv6()).count();
    assert_eq!(
        tshark_ipv6_frames(&pcap),
        v6,
        "tshark sees the IPv6 packets"
    );
}
