//! Fitting the encoder: vocabularies and IP2Vec embeddings for ports and protocol, bounds of
//! continuous fields, category lists. In private mode everything comes from the public records
//! or from the config, never from the trace being encoded.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use netshare_core::addr;
use netshare_core::records::TraceKind;

use crate::addr::{AddrCodec, WideCodec};
use crate::config::{DiscreteEncoding, EmbeddingSource, EncodeConfig, FieldEncoding, trace_fields};
use crate::encoder::{ENCODER_FORMAT, FittedEncoder, NamedField, ratio_of};
use crate::error::{Error, Result};
use crate::fields::{CategoricalCodec, ContinuousCodec, DiscreteCodec, FieldCodec};
use crate::ip2vec;
use crate::semantics::Semantics;
use crate::table::{Column, Table};

/// What the embedding training did (for the report).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingReport {
    /// Which records it was trained on.
    pub source: EmbeddingSource,
    /// Distinct port values in the vocabulary.
    pub port_vocab: usize,
    /// Distinct protocol values in the vocabulary.
    pub proto_vocab: usize,
    /// Sentences (records) per epoch.
    pub sentences: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Mean negative-sampling loss per pair in the last epoch.
    pub last_epoch_loss: f64,
}

/// The shape decisions made before fitting (chunk count, lengths).
pub(crate) struct Shape {
    pub n_chunks: usize,
    pub max_flow_len: usize,
}

/// Fits the encoder. `fit_on` is the table bounds and vocabularies come from (the input, or the
/// public records in private mode); `embed_on` the one the embedding trains on.
pub(crate) fn fit_encoder(
    cfg: &EncodeConfig,
    input: &Table,
    fit_on: Option<&Table>,
    embed_on: Option<&Table>,
    shape: Shape,
) -> Result<(FittedEncoder, Option<EmbeddingReport>)> {
    let kind = input.kind;
    let needs_embedding =
        cfg.ports == DiscreteEncoding::Embedding || cfg.proto == DiscreteEncoding::Embedding;
    let mut embedding = None;
    let (mut port_vectors, mut proto_vectors) = (None, None);
    if needs_embedding {
        let src = embed_on.ok_or_else(|| {
            Error::Config(
                "port/protocol embeddings must be trained on the `public` input here \
                 (private mode or embedding.train_on = public), and none was given; \
                 pass one or choose ports/proto = bits"
                    .into(),
            )
        })?;
        let (pv, rv, rep) = train_embeddings(cfg, src);
        port_vectors = Some(pv);
        proto_vectors = Some(rv);
        embedding = Some(rep);
    }
    let vocab_src = fit_on;
    // Wide when the records the vocabularies come from hold IPv6 (in private mode the public
    // ones: the private records decide nothing).
    let wide = vocab_src.is_some_and(|t| {
        t.keys
            .iter()
            .any(|k| k.srcip.is_ipv6() || k.dstip.is_ipv6())
    });
    let ips = match (cfg.ips, wide) {
        (DiscreteEncoding::Bits, false) => AddrCodec::Narrow(DiscreteCodec::Bits { bits: 32 }),
        (DiscreteEncoding::Bits, true) => AddrCodec::Wide(WideCodec::FamilyBits),
        (DiscreteEncoding::TopBits, false) => {
            AddrCodec::Narrow(top_bits(vocab_src, "ips", 32, cfg, |k| {
                vec![
                    addr::v4_bits(k.srcip).expect("all IPv4 when not wide"),
                    addr::v4_bits(k.dstip).expect("all IPv4 when not wide"),
                ]
            })?)
        }
        (DiscreteEncoding::TopBits, true) => {
            let t = need(vocab_src, "ips = top_bits")?;
            AddrCodec::Wide(WideCodec::FamilyTopBits {
                top: top_values(t.keys.iter().flat_map(|k| [k.srcip, k.dstip]), cfg),
            })
        }
        (other, _) => {
            return Err(Error::Config(format!(
                "ips = {other:?} is not offered: addresses are encoded as bits or top_bits"
            )));
        }
    };
    let ports = match cfg.ports {
        DiscreteEncoding::Embedding => port_vectors.expect("trained above when needed"),
        DiscreteEncoding::OneHot => DiscreteCodec::OneHot {
            values: port_values(need(vocab_src, "ports = one_hot")?)
                .into_iter()
                .collect(),
        },
        DiscreteEncoding::Bits => DiscreteCodec::Bits { bits: 16 },
        DiscreteEncoding::TopBits => top_bits(vocab_src, "ports", 16, cfg, |k| {
            vec![u32::from(k.srcport), u32::from(k.dstport)]
        })?,
    };
    let proto = match cfg.proto {
        DiscreteEncoding::Embedding => proto_vectors.expect("trained above when needed"),
        DiscreteEncoding::OneHot => DiscreteCodec::OneHot {
            values: proto_values(need(vocab_src, "proto = one_hot")?)
                .into_iter()
                .collect(),
        },
        DiscreteEncoding::Bits => DiscreteCodec::Bits { bits: 8 },
        DiscreteEncoding::TopBits => {
            top_bits(vocab_src, "proto", 8, cfg, |k| vec![u32::from(k.proto)])?
        }
    };

    let mut fields = Vec::new();
    for &name in trace_fields(kind) {
        let per = (cfg.byt_per_pkt && kind == TraceKind::Flows && name == "byt")
            .then(|| "pkt".to_string());
        let enc = cfg
            .field_encoding(kind, name)
            .expect("every trace field has a default encoding");
        let codec = match enc {
            FieldEncoding::Continuous {
                log1p,
                range,
                bounds,
                quantiles,
            } => {
                if name == "label" {
                    return Err(Error::Config(
                        "field `label` is text and cannot be continuous".into(),
                    ));
                }
                let values = match bounds {
                    Some(_) => Vec::new(),
                    None => {
                        let src = need(vocab_src, &format!("bounds of `{name}`"))?;
                        let v = numbers(src, name);
                        match &per {
                            Some(d) => v
                                .iter()
                                .zip(numbers(src, d))
                                .map(|(&x, d)| ratio_of(x, d))
                                .collect(),
                            None => v,
                        }
                    }
                };
                // A ratio is not an integer; the decoded product is rounded instead.
                let integer = name != "td" && per.is_none();
                let codec = ContinuousCodec::fit(&values, log1p, range, bounds, integer);
                FieldCodec::Continuous(if bounds.is_none() && quantiles > 0 {
                    codec.with_quantiles(&values, quantiles)
                } else {
                    codec
                })
            }
            FieldEncoding::Categorical { categories } => {
                let categories = match categories {
                    Some(c) => c,
                    None => {
                        let mut set: BTreeSet<String> =
                            strings(need(vocab_src, &format!("categories of `{name}`"))?, name)
                                .into_iter()
                                .collect();
                        if name == "flag" {
                            set.extend(["0", "1", "2"].map(String::from));
                        }
                        set.into_iter().collect()
                    }
                };
                if categories.is_empty() {
                    return Err(Error::Config(format!("field `{name}` has no categories")));
                }
                FieldCodec::Categorical(CategoricalCodec { categories })
            }
        };
        fields.push(NamedField {
            name: name.to_string(),
            codec,
            per,
        });
    }
    let semantics = match (cfg.semantics, vocab_src) {
        (true, Some(t)) => {
            let integer: Vec<&str> = fields
                .iter()
                .filter(|f| {
                    f.per.is_some() || matches!(&f.codec, FieldCodec::Continuous(c) if c.integer)
                })
                .map(|f| f.name.as_str())
                .collect();
            Some(Semantics::fit(t, &integer))
        }
        _ => None,
    };
    let sample_len = cfg.sample_len.max(1);
    let max_len = shape.max_flow_len.div_ceil(sample_len).max(1) * sample_len;
    Ok((
        FittedEncoder {
            format: ENCODER_FORMAT,
            kind,
            n_chunks: shape.n_chunks,
            max_flow_len: shape.max_flow_len,
            sample_len,
            max_len,
            interarrival_log1p: cfg.interarrival_log1p,
            ips,
            ports,
            proto,
            fields,
            semantics,
            private: cfg.private,
        },
        embedding,
    ))
}

fn need<'t>(t: Option<&'t Table>, what: &str) -> Result<&'t Table> {
    t.ok_or_else(|| {
        Error::Config(format!(
            "private mode takes {what} from the `public` input or the config, and neither \
             gave it"
        ))
    })
}

/// A `top_bits` codec of `bits` bits over the values `of` each record's five-tuple gives.
fn top_bits(
    src: Option<&Table>,
    field: &str,
    bits: u32,
    cfg: &EncodeConfig,
    of: impl Fn(&crate::table::FiveTuple) -> Vec<u32>,
) -> Result<DiscreteCodec> {
    let t = need(src, &format!("{field} = top_bits"))?;
    Ok(DiscreteCodec::TopBits {
        top: top_values(t.keys.iter().flat_map(of), cfg),
        bits,
    })
}

/// The most frequent values (count descending, then value), at most `cfg.top_values`, each
/// seen at least `cfg.top_min_count` times; returned ascending.
fn top_values<T: Ord + Copy>(values: impl Iterator<Item = T>, cfg: &EncodeConfig) -> Vec<T> {
    let mut counts: std::collections::BTreeMap<T, usize> = std::collections::BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0) += 1;
    }
    let mut by_count: Vec<(T, usize)> = counts
        .into_iter()
        .filter(|&(_, n)| n >= cfg.top_min_count.max(1))
        .collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_count.truncate(cfg.top_values);
    let mut top: Vec<T> = by_count.into_iter().map(|(v, _)| v).collect();
    top.sort_unstable();
    top
}

fn port_values(t: &Table) -> BTreeSet<u32> {
    t.keys
        .iter()
        .flat_map(|k| [u32::from(k.srcport), u32::from(k.dstport)])
        .collect()
}

fn proto_values(t: &Table) -> BTreeSet<u32> {
    t.keys.iter().map(|k| u32::from(k.proto)).collect()
}

fn numbers(t: &Table, name: &str) -> Vec<f64> {
    match t.column(name) {
        Some(Column::Num(v)) => v.clone(),
        Some(Column::Cat(v)) => v.iter().filter_map(|s| s.parse().ok()).collect(),
        None => Vec::new(),
    }
}

fn strings(t: &Table, name: &str) -> Vec<String> {
    match t.column(name) {
        Some(Column::Cat(v)) => v.clone(),
        Some(Column::Num(v)) => v.iter().map(|x| x.to_string()).collect(),
        None => Vec::new(),
    }
}

/// Trains IP2Vec on `[srcport, dstport, proto]` sentences of `src` (in time order) and returns
/// the port codec, the protocol codec and the report.
fn train_embeddings(
    cfg: &EncodeConfig,
    src: &Table,
) -> (DiscreteCodec, DiscreteCodec, EmbeddingReport) {
    let ports: Vec<u32> = port_values(src).into_iter().collect();
    let protos: Vec<u32> = proto_values(src).into_iter().collect();
    let pid = |p: u16| ports.binary_search(&u32::from(p)).unwrap_or(0) as u32;
    let rid = |p: u8| (ports.len() + protos.binary_search(&u32::from(p)).unwrap_or(0)) as u32;
    let order = crate::chunks::time_order(&src.time);
    let sentences: Vec<Vec<u32>> = order
        .iter()
        .map(|&i| {
            let k = &src.keys[i];
            vec![pid(k.srcport), pid(k.dstport), rid(k.proto)]
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let vectors = ip2vec::train(
        &sentences,
        ports.len() + protos.len(),
        &cfg.embedding,
        &mut rng,
    );
    let dim = vectors.dim;
    let rows = |range: std::ops::Range<usize>| -> Vec<Vec<f32>> {
        range.map(|i| vectors.row(i).to_vec()).collect()
    };
    let port_codec = DiscreteCodec::Embedding {
        values: ports.clone(),
        dim,
        vectors: rows(0..ports.len()),
    };
    let proto_codec = DiscreteCodec::Embedding {
        values: protos.clone(),
        dim,
        vectors: rows(ports.len()..ports.len() + protos.len()),
    };
    let report = EmbeddingReport {
        source: cfg.embedding.train_on,
        port_vocab: ports.len(),
        proto_vocab: protos.len(),
        sentences: sentences.len(),
        epochs: cfg.embedding.epochs,
        last_epoch_loss: vectors.last_epoch_loss,
    };
    (port_codec, proto_codec, report)
}
