//! Robustness on the nDPI test corpus (hundreds of odd captures), gated by
//! `NETSHARE_NDPI_DIR=<dir>` (fetch it once with `../shared/data/fetch-ndpi-corpus.sh DIR`).

use netshare_ingest::read_packets_from_bytes;

fn captures_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            captures_under(&p, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "pcap" | "pcapng" | "cap"))
        {
            out.push(p);
        }
    }
}

#[test]
fn every_ndpi_corpus_capture_ingests_without_a_panic() {
    let Some(dir) = std::env::var_os("NETSHARE_NDPI_DIR") else {
        netshare_core::skip::note_skip(
            "every_ndpi_corpus_capture_ingests_without_a_panic",
            "set NETSHARE_NDPI_DIR to a folder made by fetch-ndpi-corpus.sh",
        );
        return;
    };
    let mut files = Vec::new();
    captures_under(std::path::Path::new(&dir), &mut files);
    assert!(!files.is_empty(), "no captures under {dir:?}");
    let (mut frames, mut kept, mut errors, mut damaged) = (0u64, 0u64, 0usize, 0usize);
    let mut ipv6 = 0u64;
    let mut skipped = std::collections::BTreeMap::<String, u64>::new();
    for f in &files {
        let bytes = std::fs::read(f).expect("read capture");
        match read_packets_from_bytes(&bytes) {
            Ok((t, rep)) => {
                assert_eq!(t.len() as u64, rep.records_kept);
                frames += rep.records_read;
                kept += rep.records_kept;
                ipv6 += rep.records_ipv6;
                for (k, v) in &rep.skipped {
                    *skipped.entry(k.clone()).or_default() += v;
                }
                damaged += usize::from(rep.files_damaged > 0);
            }
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                errors += 1;
            }
        }
    }
    eprintln!(
        "nDPI corpus: {} captures, {frames} frames, {kept} IP records ({ipv6} IPv6), skipped \
         {skipped:?}, {damaged} damaged, {errors} refused",
        files.len()
    );
}
