//! Damaged and foreign input: never a panic; what was complete is kept; errors say what the
//! file looks like.

use fixtures::captures::{Iface, NgPacket, PcapOpts, Wrap, lt, pcap, pcapng, sample_frames};
use netshare_ingest::{IngestConfig, IngestError, ingest_files, read_packets_from_bytes};

use crate::temp_file;

const T0: i64 = 1_600_000_000_000_000;

#[test]
fn a_pcap_cut_anywhere_keeps_the_complete_frames_and_says_where() {
    let bytes = pcap(
        &PcapOpts::new(lt::ETHERNET),
        &sample_frames(Wrap::Ethernet, 6, T0),
    );
    let (whole, _) = read_packets_from_bytes(&bytes).expect("whole file");
    // Record boundaries: header 24, then 16 + caplen each.
    let mut ends = vec![24usize];
    for f in sample_frames(Wrap::Ethernet, 6, T0) {
        ends.push(ends.last().expect("non-empty") + 16 + f.data.len());
    }
    for cut in 4..bytes.len() {
        let (t, rep) = read_packets_from_bytes(&bytes[..cut]).expect("a cut pcap is not an error");
        let complete = ends.iter().filter(|&&e| e <= cut).count().saturating_sub(1);
        // Six IPv4 packets, one IPv6 packet, then an ARP frame that gives no record.
        let ip_complete = complete.min(7);
        assert_eq!(t.len(), ip_complete, "cut at {cut}");
        assert_eq!(
            t,
            whole.take(&(0..ip_complete).collect::<Vec<_>>()),
            "cut at {cut}"
        );
        let boundary = ends.contains(&cut);
        match &rep.files[0].damage {
            None => assert!(boundary, "cut at {cut} must be reported"),
            Some(d) => {
                assert!(!boundary, "cut at {cut} is a clean end");
                let start = *ends.iter().rev().find(|&&e| e <= cut).unwrap_or(&0);
                let start = if cut < 24 { 0 } else { start };
                assert_eq!(d.offset, start as u64, "cut at {cut}");
                assert!(
                    d.message.contains(&format!("truncated at byte {start}")),
                    "{}",
                    d.message
                );
            }
        }
    }
}

#[test]
fn a_pcapng_cut_anywhere_never_panics_and_keeps_a_prefix() {
    let ifaces = [Iface {
        linktype: lt::ETHERNET,
        tsresol: Some(9),
        snaplen: 65535,
    }];
    let pk: Vec<NgPacket> = sample_frames(Wrap::Ethernet, 5, T0)
        .into_iter()
        .map(|frame| NgPacket::Epb { iface: 0, frame })
        .collect();
    let bytes = pcapng(&ifaces, &pk, true);
    let (whole, _) = read_packets_from_bytes(&bytes).expect("whole");
    for cut in 4..bytes.len() {
        let (t, _) = read_packets_from_bytes(&bytes[..cut]).expect("not an error");
        assert!(t.len() <= whole.len());
        assert_eq!(
            t,
            whole.take(&(0..t.len()).collect::<Vec<_>>()),
            "cut at {cut}"
        );
    }
}

/// A small deterministic generator (xorshift) for corrupting bytes.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn corrupted_captures_never_panic() {
    let pc = pcap(
        &PcapOpts::new(lt::LINUX_SLL),
        &sample_frames(Wrap::Sll, 8, T0),
    );
    let ifaces = [
        Iface {
            linktype: lt::ETHERNET,
            tsresol: None,
            snaplen: 65535,
        },
        Iface {
            linktype: lt::RAW,
            tsresol: Some(9),
            snaplen: 65535,
        },
    ];
    let pk: Vec<NgPacket> = sample_frames(Wrap::Ethernet, 8, T0)
        .into_iter()
        .map(|frame| NgPacket::Epb { iface: 0, frame })
        .collect();
    let ng = pcapng(&ifaces, &pk, false);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for base in [pc, ng] {
        for _ in 0..3000 {
            let mut b = base.clone();
            let flips = 1 + rng.next() % 8;
            for _ in 0..flips {
                let i = (rng.next() % b.len() as u64) as usize;
                // Keep the magic so the container reader, not the sniffer, sees the damage.
                if i >= 4 {
                    b[i] = rng.next() as u8;
                }
            }
            // Any outcome but a panic is fine; records never exceed frames.
            if let Ok((t, rep)) = read_packets_from_bytes(&b) {
                assert!(t.len() as u64 <= rep.records_read);
            }
        }
    }
    // A corrupt length field stops the file with a message, keeping what came before.
    let mut b = pcap(&PcapOpts::new(lt::RAW), &sample_frames(Wrap::Raw, 3, T0));
    b[24 + 8..24 + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let (t, rep) = read_packets_from_bytes(&b).expect("not an error");
    assert_eq!(t.len(), 0);
    let d = rep.files[0].damage.as_ref().expect("damage");
    assert_eq!(d.offset, 24);
    assert!(d.message.contains("implausible"), "{}", d.message);
}

#[test]
fn foreign_files_get_an_error_that_says_what_they_look_like() {
    let cases: [(&str, &[u8], &str); 6] = [
        ("a.gz", &[0x1f, 0x8b, 8, 0, 0, 0], "gzip"),
        ("a.parquet", b"PAR1\0\0\0\0", "Parquet"),
        (
            "a.txt",
            b"hello world\n",
            "text whose first line is \"hello world\"",
        ),
        (
            "a.csv",
            b"x,y,z\n1,2,3\n",
            "not a header of a known dialect",
        ),
        (
            "a.bin",
            &[0, 1, 2, 3, 4, 5, 6, 7, 8],
            "binary data starting with bytes 00 01 02",
        ),
        ("empty", b"", "an empty file"),
    ];
    for (name, bytes, want) in cases {
        let (dir, p) = temp_file(name, bytes);
        let err = ingest_files(
            &[p],
            &IngestConfig::default(),
            &dir.path().join("o.parquet"),
        )
        .expect_err("not a trace");
        assert!(
            matches!(err, IngestError::UnknownFormat { .. }),
            "{name}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(want), "{name}: {msg}");
        assert!(msg.contains("Accepted: pcap"), "{name}: {msg}");
    }
}

#[test]
fn a_truncated_file_on_disk_gives_records_and_a_warning() {
    let bytes = pcap(
        &PcapOpts::new(lt::ETHERNET),
        &sample_frames(Wrap::Ethernet, 4, T0),
    );
    let cut = bytes.len() - 10;
    let (dir, p) = temp_file("cut.pcap", &bytes[..cut]);
    let out = dir.path().join("o.parquet");
    let rep = ingest_files(&[p], &IngestConfig::default(), &out).expect("kept what was complete");
    assert_eq!(
        rep.records_kept, 5,
        "four IPv4 packets and the IPv6 one; the ARP frame is cut"
    );
    assert_eq!(rep.files_damaged, 1);
    assert!(
        rep.summary().contains("truncated at byte"),
        "{}",
        rep.summary()
    );
    assert_eq!(
        netshare_core::records::read_packets(&out)
            .expect("read back")
            .len(),
        5
    );
}
