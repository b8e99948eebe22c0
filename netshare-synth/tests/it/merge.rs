//! The cross-chunk merge on hand-made attributes.

use netshare_core::layout::{Activation, Layout, Segment};
use netshare_core::records::{FlowColumns, FlowRecord, Records};
use netshare_synth::merge::{CleanCounts, Duplicates, Merger, TagHeads, clean_chunk};

const N_CHUNKS: usize = 4;

/// srcip as 4 bits (enough to tell hand-made flows apart), a tanh port, flow_start, tags.
fn layout() -> Layout {
    let mut attributes: Vec<Segment> = (0..4)
        .map(|b| Segment::new(&format!("srcip/bit{b:02}"), 2, Activation::Softmax))
        .collect();
    attributes.push(Segment::new("dstport", 1, Activation::Tanh));
    attributes.push(Segment::new("flow_start", 1, Activation::Sigmoid));
    attributes.push(Segment::new("tag/starts_here", 2, Activation::Softmax));
    for c in 0..N_CHUNKS {
        attributes.push(Segment::new(
            &format!("tag/in_chunk/{c:03}"),
            2,
            Activation::Softmax,
        ));
    }
    Layout {
        attributes,
        features: vec![Segment::new("interarrival", 1, Activation::Sigmoid)],
        sample_len: 1,
        private: false,
    }
}

const A: usize = 4 * 2 + 1 + 1 + 2 + 2 * N_CHUNKS;
const START: usize = 9;

/// One attribute row: `id` in the srcip bits (as soft probabilities), a port, a start time,
/// and the tags.
fn row(id: u8, port: f32, start: f32, starts_here: bool, chunks: &[usize]) -> Vec<f32> {
    let mut r = Vec::with_capacity(A);
    for b in (0..4).rev() {
        let on = id >> b & 1 == 1;
        r.extend_from_slice(if on { &[0.2, 0.8] } else { &[0.7, 0.3] });
    }
    r.push(port);
    r.push(start);
    let yes_no = |y: bool| if y { [0.1f32, 0.9] } else { [0.6, 0.4] };
    r.extend_from_slice(&yes_no(starts_here));
    for c in 0..N_CHUNKS {
        r.extend_from_slice(&yes_no(chunks.contains(&c)));
    }
    assert_eq!(r.len(), A);
    r
}

/// The id and port of each planned row (what decoding would give as its five-tuple).
fn identities(attrs: &[f32]) -> Vec<(u8, f32)> {
    attrs
        .chunks_exact(A)
        .map(|r| {
            let id = (0..4).fold(0u8, |acc, b| acc << 1 | u8::from(r[2 * b + 1] > r[2 * b]));
            (id, r[8])
        })
        .collect()
}

#[test]
fn a_flow_tagged_for_chunks_0_2_3_appears_with_its_five_tuple_in_exactly_those_chunks() {
    let heads = TagHeads::from_layout(&layout(), N_CHUNKS).expect("heads");
    let mut m = Merger::new(heads, N_CHUNKS);
    // Chunk 0: flow 5 lives in chunks 0, 2, 3; flow 6 only in 0; a continuation row (dropped);
    // a row claiming to start here but not tagged for chunk 0 (contradictory, dropped).
    let mut c0 = row(5, 0.25, 0.1, true, &[0, 2, 3]);
    c0.extend(row(6, -0.5, 0.2, true, &[0]));
    c0.extend(row(7, 0.9, 0.3, false, &[0]));
    c0.extend(row(8, 0.1, 0.4, true, &[1]));
    // Later chunks: each samples one new flow and continuation rows whose start times the
    // carried flows take.
    let c1 = [
        row(9, 0.0, 0.5, true, &[1]),
        row(10, 0.0, 0.55, false, &[1]),
    ]
    .concat();
    let c2 = [
        row(11, 0.0, 0.6, true, &[2]),
        row(12, 0.3, 0.65, false, &[2]),
    ]
    .concat();
    let c3 = [
        row(13, 0.0, 0.7, false, &[3]),
        row(14, 0.0, 0.75, true, &[3]),
    ]
    .concat();

    let plans: Vec<_> = [c0, c1, c2, c3]
        .iter()
        .enumerate()
        .map(|(c, a)| m.plan_chunk(c, a).expect("plan"))
        .collect();
    let ids: Vec<Vec<(u8, f32)>> = plans.iter().map(|p| identities(&p.attributes)).collect();
    assert_eq!(ids[0], vec![(5, 0.25), (6, -0.5)]);
    assert_eq!(ids[1], vec![(9, 0.0)]);
    assert_eq!(ids[2], vec![(5, 0.25), (11, 0.0)]);
    assert_eq!(ids[3], vec![(5, 0.25), (14, 0.0)]);
    let chunks_with_5: Vec<usize> = (0..N_CHUNKS)
        .filter(|&c| ids[c].iter().any(|&(id, _)| id == 5))
        .collect();
    assert_eq!(chunks_with_5, vec![0, 2, 3]);
    // Only flows that neither come from nor go to another chunk may get a fresh port.
    let local: Vec<&[bool]> = plans.iter().map(|p| p.local.as_slice()).collect();
    assert_eq!(
        local,
        [&[false, true][..], &[true], &[false, true], &[false, true]]
    );
    // Carried rows take the continuation row's start time and are tagged for this chunk only.
    assert_eq!(plans[2].attributes[START], 0.65);
    assert_eq!(plans[3].attributes[START], 0.7);
    assert_eq!(plans[2].carried, 1);
    assert_eq!(plans[2].origins[0].chunk, 0);
    let carried = &plans[2].attributes[..A];
    assert!(carried[10] > carried[11], "starts_here is off");
    assert!(
        carried[12 + 2 * 2 + 1] > carried[12 + 2 * 2],
        "in_chunk/002 is on"
    );

    let c = m.counts();
    assert_eq!(c.sampled, 10);
    assert_eq!(c.started, 5);
    assert_eq!(c.dropped_contradictory_tags, 1);
    assert_eq!(c.carried, 2);
    assert_eq!(c.continuation_rows, 4);
    assert_eq!(c.continuation_rows_unused, 2);
}

#[test]
fn carried_flows_beyond_the_continuation_rows_reuse_them_and_say_so() {
    let heads = TagHeads::from_layout(&layout(), N_CHUNKS).expect("heads");
    let mut m = Merger::new(heads, N_CHUNKS);
    let c0 = [
        row(1, 0.0, 0.1, true, &[0, 1]),
        row(2, 0.0, 0.1, true, &[0, 1]),
    ]
    .concat();
    m.plan_chunk(0, &c0).expect("plan 0");
    let p1 = m
        .plan_chunk(1, &row(3, 0.0, 0.9, false, &[1]))
        .expect("plan 1");
    assert_eq!(identities(&p1.attributes), vec![(1, 0.0), (2, 0.0)]);
    assert_eq!(m.counts().continuation_rows_reused, 1);
    let p2 = m.plan_chunk(2, &[]).expect("plan 2 (nothing sampled)");
    assert!(p2.is_empty());
    assert!(m.plan_chunk(1, &[]).is_err(), "chunks come in order");
}

#[test]
fn layouts_without_tags_keep_every_row_and_mismatched_tags_are_refused() {
    let mut l = layout();
    l.attributes.retain(|s| !s.field.starts_with("tag/"));
    let heads = TagHeads::from_layout(&l, 1).expect("one chunk, no tags");
    let mut m = Merger::new(heads, 1);
    let a = vec![0.5f32; 10 * 3];
    assert_eq!(m.plan_chunk(0, &a).expect("plan").len(), 3);
    assert!(TagHeads::from_layout(&l, 2).is_err());
    assert!(TagHeads::from_layout(&layout(), 3).is_err());
}

fn flow(srcip: u32, ts_us: i64) -> FlowRecord {
    FlowRecord {
        srcip: netshare_core::addr::v4(srcip),
        dstip: netshare_core::addr::v4(2),
        srcport: 3,
        dstport: 4,
        proto: 6,
        ts_us,
        td: 1.0,
        pkt: 1,
        byt: 40,
        label: String::new(),
    }
}

#[test]
fn cleaning_keeps_the_first_flow_per_five_tuple_drops_out_of_range_and_sorts() {
    let mut t = FlowColumns::default();
    // flow 0: srcip 1 (two records), flow 1: srcip 2, flow 2: srcip 1 again (duplicate),
    // flow 3: srcip 3 with one record after the range.
    let rows = [
        (0, flow(1, 500)),
        (0, flow(1, 100)),
        (1, flow(2, 300)),
        (2, flow(1, 200)),
        (3, flow(3, 400)),
        (3, flow(3, 5_000)),
    ];
    let mut flow_of = Vec::new();
    for (f, r) in rows {
        flow_of.push(f);
        t.push(r);
    }
    let mut counts = CleanCounts::default();
    let out = clean_chunk(
        &Records::Flows(t),
        &flow_of,
        &[],
        Duplicates::Drop,
        0,
        1_000,
        &mut counts,
    )
    .expect("clean");
    let Records::Flows(out) = out else {
        panic!("kind changed")
    };
    assert_eq!(out.ts_us, vec![100, 300, 400, 500]);
    assert_eq!(
        out.srcip,
        [1, 2, 3, 1].map(netshare_core::addr::v4).to_vec()
    );
    assert_eq!(counts.duplicate_flows, 1);
    assert_eq!(counts.duplicate_flow_records, 1);
    assert_eq!(counts.outside_time_range, 1);
    assert_eq!(counts.kept_records, 4);
    assert_eq!(counts.decoded_records, 6);
}

#[test]
fn a_repeated_local_tcp_or_udp_flow_gets_a_fresh_higher_port_and_others_are_dropped() {
    let with = |srcip: u32, ts_us: i64, sp: u16, dp: u16, proto: u8| FlowRecord {
        srcport: sp,
        dstport: dp,
        proto,
        ..flow(srcip, ts_us)
    };
    // Flow 0 owns (1, 2, 51000, 443, TCP). Flow 1 repeats it (two records): it moves to
    // source port 51001, which flow 2 already has, so to 51002. Flow 3 repeats flow 0 but is
    // carried (not local): dropped. Flows 4 and 7 share a server-to-client tuple (443 ->
    // 65535); the lower flow index keeps it though its record comes later, and flow 7's
    // destination port, the higher one, wraps to 1024. Flows 5 and 6 share an ICMP tuple (no
    // ports): flow 6 is dropped.
    let rows = [
        (0, with(1, 10, 51_000, 443, 6)),
        (1, with(1, 20, 51_000, 443, 6)),
        (1, with(1, 30, 51_000, 443, 6)),
        (2, with(1, 40, 51_001, 443, 6)),
        (3, with(1, 50, 51_000, 443, 6)),
        (7, with(9, 60, 443, 65_535, 17)),
        (4, with(9, 70, 443, 65_535, 17)),
        (6, with(5, 80, 0, 0, 1)),
        (5, with(5, 90, 0, 0, 1)),
    ];
    let mut t = FlowColumns::default();
    let mut flow_of = Vec::new();
    for (f, r) in rows {
        flow_of.push(f);
        t.push(r);
    }
    let local = [true, true, true, false, true, true, true, true];
    let run = |policy| {
        let mut counts = CleanCounts::default();
        let out = clean_chunk(
            &Records::Flows(t.clone()),
            &flow_of,
            &local,
            policy,
            0,
            1_000,
            &mut counts,
        )
        .expect("clean");
        let Records::Flows(out) = out else {
            panic!("kind changed")
        };
        (out, counts)
    };
    let (out, counts) = run(Duplicates::NewPort);
    let got: Vec<(i64, u16, u16)> = (0..out.len())
        .map(|i| (out.ts_us[i], out.srcport[i], out.dstport[i]))
        .collect();
    assert_eq!(
        got,
        vec![
            (10, 51_000, 443),
            (20, 51_002, 443),
            (30, 51_002, 443),
            (40, 51_001, 443),
            (60, 443, 1024),
            (70, 443, 65_535),
            (90, 0, 0),
        ]
    );
    assert_eq!(counts.new_port_flows, 2);
    assert_eq!(
        counts.duplicate_flows, 2,
        "the carried flow and the ICMP one"
    );
    assert_eq!(counts.duplicate_flow_records, 2);
    assert_eq!(counts.kept_records, 7);
    // NetShare's rule drops all four repeats.
    let (out, counts) = run(Duplicates::Drop);
    assert_eq!(out.len(), 4);
    assert_eq!((counts.new_port_flows, counts.duplicate_flows), (0, 4));
}
