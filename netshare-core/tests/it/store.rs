//! The store on its own: blobs, verification, manifests, gc.

use std::collections::BTreeMap;
use std::time::Duration;

use netshare_core::manifest::Provenance;
use netshare_core::{Digest, Manifest, OutputEntry, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("open");
    (dir, store)
}

#[test]
fn blobs_are_named_by_content_and_stored_once() {
    let (_d, s) = store();
    let a = s.put_bytes(b"hello").expect("put");
    let b = s.put_bytes(b"hello").expect("put again");
    assert_eq!(a, b);
    assert_eq!(a, Digest::of_bytes(b"hello"));
    let path = s.blob_path(&a);
    assert!(
        path.to_string_lossy()
            .contains(&format!("/{}/", &a.hex()[..2])),
        "fan-out by prefix"
    );
    assert_eq!(std::fs::read(path).expect("read"), b"hello");
}

#[test]
fn put_file_streams_a_copy_and_leaves_the_source() {
    let (d, s) = store();
    let src = d.path().join("src.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &bytes).expect("write");
    let digest = s.put_file(&src).expect("import");
    assert_eq!(digest, Digest::of_bytes(&bytes));
    assert!(src.is_file());
    s.verify_blob(&digest).expect("verifies");
}

#[test]
fn a_corrupted_blob_is_named_on_verify() {
    let (_d, s) = store();
    let digest = s.put_bytes(b"precious bytes").expect("put");
    std::fs::write(s.blob_path(&digest), b"precious bytez").expect("corrupt");
    let err = s
        .verify_blob(&digest)
        .expect_err("corruption detected")
        .to_string();
    assert!(err.contains("store corruption"), "{err}");
    assert!(err.contains(&digest.hex()), "names the blob: {err}");
    assert!(
        err.contains(&Digest::of_bytes(b"precious bytez").hex()),
        "gives the actual digest: {err}"
    );
}

#[test]
fn a_manifest_cannot_commit_outputs_that_are_not_stored() {
    let (_d, s) = store();
    let missing = Digest::of_bytes(b"never stored");
    let m = Manifest {
        stage: "x".into(),
        stage_version: 1,
        key: Digest::of_bytes(b"key"),
        config: serde_json::json!({}),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([(
            "out.json".to_string(),
            OutputEntry {
                digest: missing,
                size: 12,
                format: "json".into(),
                schema: None,
            },
        )]),
        provenance: Provenance::default(),
        summary: serde_json::Value::Null,
    };
    assert!(s.write_manifest(&m).is_err());
    assert!(s.read_manifest(&m.key).expect("read").is_none());
}

#[test]
fn gc_frees_unreachable_blobs_and_keeps_reachable_ones() {
    let (_d, s) = store();
    let kept = s.put_bytes(b"output of a committed run").expect("put");
    let input = s.put_bytes(b"input of a committed run").expect("put");
    let referenced = s.put_bytes(b"pinned by a ref").expect("put");
    let orphan = s.put_bytes(b"orphan from a crashed run").expect("put");
    let m = Manifest {
        stage: "x".into(),
        stage_version: 1,
        key: Digest::of_bytes(b"key"),
        config: serde_json::json!({}),
        inputs: BTreeMap::from([("in".to_string(), input)]),
        outputs: BTreeMap::from([(
            "out.json".to_string(),
            OutputEntry {
                digest: kept,
                size: 25,
                format: "json".into(),
                schema: None,
            },
        )]),
        provenance: Provenance::default(),
        summary: serde_json::Value::Null,
    };
    s.write_manifest(&m).expect("commit");
    s.write_ref(
        "pipeline",
        "stage",
        &serde_json::json!({"pinned": referenced.hex()}),
    )
    .expect("ref");
    std::fs::write(s.temp_path("leftover"), b"partial").expect("tmp");

    // Within the grace period nothing goes: another machine may still be writing.
    let r = s.gc(Duration::from_secs(3600)).expect("gc");
    assert_eq!((r.removed_blobs, r.removed_tmp), (0, 0));

    let r = s.gc(Duration::ZERO).expect("gc");
    assert_eq!(r.removed_blobs, 1);
    assert_eq!(r.kept_blobs, 3);
    assert_eq!(r.removed_tmp, 1);
    assert!(!s.has_blob(&orphan));
    for d in [kept, input, referenced] {
        s.verify_blob(&d).expect("reachable blob survives gc");
    }
}
