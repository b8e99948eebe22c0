//! Fuzz target: the packet reader must never panic, whatever the bytes.
//! Run with `cargo +nightly fuzz run packet_reader` from `netshare-ingest/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((t, rep)) = netshare_ingest::read_packets_from_bytes(data) {
        assert_eq!(t.len() as u64, rep.records_kept);
        assert!(rep.records_kept <= rep.records_read);
    }
    // Every frame decoder on its own, for every link type it knows and one it does not.
    for lt in [0u32, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147] {
        let _ = netshare_formats::packet::decode(lt, data);
    }
});
