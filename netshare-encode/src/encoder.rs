//! The fitted encoder (`encoder.json`): everything needed to turn flows into tensor rows and
//! generated activations back into records. The synthesiser decodes through this type.

use std::collections::BTreeMap;
use std::path::Path;

use netshare_core::layout::{Activation, Layout, Segment};
use netshare_core::records::{Records, TraceKind};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::addr::AddrCodec;
use crate::chunks::{ChunkInfo, FlowTags, read_json, write_json};
use crate::error::{Error, Result};
use crate::fields::{DiscreteCodec, FieldCodec};
use crate::table::{FiveTuple, RecordsBuilder, Value};

/// One decoded flow: its five-tuple and its records as (time, values).
type DecodedFlow = (FiveTuple, Vec<(i64, Vec<Value>)>);

/// Version of the `encoder.json` format.
pub const ENCODER_FORMAT: u32 = 1;

/// Head name of the flow start attribute.
pub const FLOW_START: &str = "flow_start";
/// Head name of the inter-arrival feature.
pub const INTERARRIVAL: &str = "interarrival";
/// What every flow-tag head's name starts with.
pub const TAG_PREFIX: &str = "tag/";
/// Head name of the `starts_here` tag.
pub const TAG_STARTS_HERE: &str = "tag/starts_here";
/// What the `in_chunk_i` tags' names start with (then `i` in three digits).
pub const TAG_IN_CHUNK_PREFIX: &str = "tag/in_chunk/";

/// Head name of the `in_chunk_i` tag.
pub fn tag_in_chunk(i: usize) -> String {
    format!("{TAG_IN_CHUNK_PREFIX}{i:03}")
}

/// Whether `field` names a flow-tag head ([`TAG_STARTS_HERE`], [`tag_in_chunk`]).
pub fn is_tag_head(field: &str) -> bool {
    field.starts_with(TAG_PREFIX)
}

/// A non-key field and its codec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedField {
    /// Field name (`td`, `pkt_len`, ...).
    pub name: String,
    /// Its codec.
    pub codec: FieldCodec,
    /// An earlier continuous field that divides this one before encoding: the codec then
    /// holds the ratio (bytes per packet for `byt` over `pkt`), and decoding multiplies the
    /// decoded ratio by the decoded divisor and rounds to an integer. A record whose divisor
    /// is not positive encodes its value as the ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
}

impl NamedField {
    /// The index of the divisor among `fields`, when this field is encoded per another.
    fn divisor(&self, fields: &[NamedField]) -> Option<usize> {
        let per = self.per.as_deref()?;
        fields.iter().position(|f| f.name == per)
    }
}

/// The value a field with a divisor encodes: `x / d` for a positive divisor, else `x`.
pub fn ratio_of(x: f64, d: f64) -> f64 {
    if d > 0.0 { x / d } else { x }
}

/// The fitted encoder. Serialised as `encoder.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedEncoder {
    /// Format version ([`ENCODER_FORMAT`]).
    pub format: u32,
    /// The trace kind decoded records have.
    pub kind: TraceKind,
    /// Number of (non-empty) chunks; tag heads exist when it is above 1.
    pub n_chunks: usize,
    /// Maximum records per flow.
    pub max_flow_len: usize,
    /// Records per generator step.
    pub sample_len: usize,
    /// Time steps per sample: `max_flow_len` rounded up to a multiple of `sample_len`.
    pub max_len: usize,
    /// Inter-arrival gaps as log1p(gap) / log1p(span) (else gap / span), span = the chunk's.
    pub interarrival_log1p: bool,
    /// Codec of `srcip` and `dstip` (absent in files written before it existed: 32 bits);
    /// wide (a family attribute and 128 bits) when the fitted records hold IPv6.
    #[serde(default = "ip_bits")]
    pub ips: AddrCodec,
    /// Codec of `srcport` and `dstport`.
    pub ports: DiscreteCodec,
    /// Codec of `proto`.
    pub proto: DiscreteCodec,
    /// Non-key fields in feature order.
    pub fields: Vec<NamedField>,
    /// Field semantics enforced on decode (absent in files written before they existed, and
    /// when the config turns them off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantics: Option<crate::semantics::Semantics>,
    /// Fitted in private mode (on the public records or the config alone); carried into the
    /// layout. Absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

fn ip_bits() -> AddrCodec {
    AddrCodec::Narrow(DiscreteCodec::Bits { bits: 32 })
}

/// Counts of values the encoder could not represent exactly, by field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeCounts {
    /// Values outside a field's bounds (clamped), by field.
    pub clamped: BTreeMap<String, u64>,
    /// Port / protocol values or categories not in the fitted vocabulary, by field.
    pub unseen: BTreeMap<String, u64>,
}

impl EncodeCounts {
    fn bump(map: &mut BTreeMap<String, u64>, field: &str) {
        *map.entry(field.to_string()).or_insert(0) += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &EncodeCounts) {
        for (k, v) in &other.clamped {
            *self.clamped.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.unseen {
            *self.unseen.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// The decoded attributes of one generated flow.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowAttributes {
    /// The five-tuple.
    pub key: FiveTuple,
    /// `flow_start` in [0, 1] of the chunk's range.
    pub flow_start: f64,
    /// The tags, when the encoder has more than one chunk.
    pub tags: Option<FlowTags>,
}

/// Offsets of the tag heads in an attribute row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagHeads {
    /// Offset of `tag/starts_here` (two dims; index 1 = yes).
    pub starts_here: usize,
    /// Offset of `tag/in_chunk/NNN` for each chunk (two dims each; index 1 = yes).
    pub in_chunk: Vec<usize>,
}

impl TagHeads {
    /// Finds the tag heads of a layout by name; `None` when it has none (one chunk).
    pub fn find(layout: &Layout) -> Option<TagHeads> {
        let offs = layout.attribute_offsets();
        let find = |name: &str| offs.iter().find(|(_, s)| s.field == name).map(|(o, _)| *o);
        let starts_here = find(TAG_STARTS_HERE)?;
        let mut in_chunk = Vec::new();
        while let Some(o) = find(&tag_in_chunk(in_chunk.len())) {
            in_chunk.push(o);
        }
        Some(TagHeads {
            starts_here,
            in_chunk,
        })
    }

    /// Reads the tags of one attribute row (per head, the larger of the two values).
    pub fn read(&self, row: &[f32]) -> FlowTags {
        let yes = |o: usize| row.get(o + 1).zip(row.get(o)).is_some_and(|(a, b)| a > b);
        FlowTags {
            starts_here: yes(self.starts_here),
            in_chunk: self.in_chunk.iter().map(|&o| yes(o)).collect(),
        }
    }

    /// Sets the tags of one attribute row to hard one-hots.
    pub fn write(&self, tags: &FlowTags, row: &mut [f32]) {
        let mut put = |o: usize, yes: bool| {
            row[o] = if yes { 0.0 } else { 1.0 };
            row[o + 1] = if yes { 1.0 } else { 0.0 };
        };
        put(self.starts_here, tags.starts_here);
        for (&o, &b) in self.in_chunk.iter().zip(&tags.in_chunk) {
            put(o, b);
        }
    }
}

impl FittedEncoder {
    /// Reads `encoder.json`.
    pub fn read(path: &Path) -> Result<FittedEncoder> {
        let enc: FittedEncoder = read_json(path)?;
        enc.validate().map_err(|message| Error::BadEncoder {
            what: path.display().to_string(),
            message,
        })?;
        Ok(enc)
    }

    /// Writes `encoder.json`.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }

    /// Checks internal consistency (what a hand-edited or damaged file could break).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != ENCODER_FORMAT {
            return Err(format!(
                "format {} (this build reads {ENCODER_FORMAT})",
                self.format
            ));
        }
        if self.sample_len == 0
            || self.max_len == 0
            || !self.max_len.is_multiple_of(self.sample_len)
        {
            return Err(format!(
                "max_len {} must be a positive multiple of sample_len {}",
                self.max_len, self.sample_len
            ));
        }
        self.ips.validate()?;
        for (name, c) in [("ports", &self.ports), ("proto", &self.proto)] {
            if let DiscreteCodec::TopBits { top, .. } = c
                && top.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(format!("{name}: top values must be strictly ascending"));
            }
        }
        for (name, c) in [("ports", &self.ports), ("proto", &self.proto)] {
            if let DiscreteCodec::Embedding {
                values,
                dim,
                vectors,
            } = c
            {
                if values.len() != vectors.len() || vectors.iter().any(|v| v.len() != *dim) {
                    return Err(format!(
                        "{name}: {} values, {} vectors, all of width {dim} expected",
                        values.len(),
                        vectors.len()
                    ));
                }
                if values.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("{name}: values must be strictly ascending"));
                }
            }
        }
        let want = crate::config::trace_fields(self.kind);
        let have: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        if have != want {
            return Err(format!(
                "fields {have:?}, expected {want:?} for {:?}",
                self.kind
            ));
        }
        for (i, f) in self.fields.iter().enumerate() {
            let Some(per) = &f.per else { continue };
            let ok = matches!(f.codec, FieldCodec::Continuous(_))
                && f.divisor(&self.fields).is_some_and(|j| {
                    j < i && matches!(self.fields[j].codec, FieldCodec::Continuous(_))
                });
            if !ok {
                return Err(format!(
                    "field {}: per {per:?} must name an earlier continuous field, and {} must be continuous",
                    f.name, f.name
                ));
            }
        }
        Ok(())
    }

    /// True when attributes carry flow tags.
    pub fn has_tags(&self) -> bool {
        self.n_chunks > 1
    }

    /// The tensor layout (head names as in ARCHITECTURE.md).
    pub fn layout(&self) -> Layout {
        let mut attributes = Vec::new();
        attributes.extend(self.ips.segments());
        attributes.extend(self.ports.segments("srcport"));
        attributes.extend(self.ports.segments("dstport"));
        attributes.extend(self.proto.segments("proto"));
        attributes.push(Segment {
            field: FLOW_START.into(),
            dim: 1,
            activation: Activation::Sigmoid,
        });
        if self.has_tags() {
            let two = |field: String| Segment {
                field,
                dim: 2,
                activation: Activation::Softmax,
            };
            attributes.push(two(TAG_STARTS_HERE.into()));
            for i in 0..self.n_chunks {
                attributes.push(two(tag_in_chunk(i)));
            }
        }
        let mut features = vec![Segment {
            field: INTERARRIVAL.into(),
            dim: 1,
            activation: Activation::Sigmoid,
        }];
        features.extend(self.fields.iter().map(|f| f.codec.segment(&f.name)));
        Layout {
            attributes,
            features,
            sample_len: self.sample_len,
            private: self.private,
        }
    }

    /// Attribute dims per flow.
    pub fn attribute_dim(&self) -> usize {
        self.ips.dim() + 2 * self.ports.dim() + self.proto.dim() + 1 + self.tag_dim()
    }

    fn tag_dim(&self) -> usize {
        if self.has_tags() {
            2 + 2 * self.n_chunks
        } else {
            0
        }
    }

    /// Feature dims per record.
    pub fn feature_dim(&self) -> usize {
        1 + self.fields.iter().map(|f| f.codec.dim()).sum::<usize>()
    }

    /// The tag heads of this encoder's layout.
    pub fn tag_heads(&self) -> Option<TagHeads> {
        self.has_tags().then(|| {
            let base = self.attribute_dim() - self.tag_dim();
            TagHeads {
                starts_here: base,
                in_chunk: (0..self.n_chunks).map(|i| base + 2 + 2 * i).collect(),
            }
        })
    }

    /// Writes one flow's attributes into `out[..attribute_dim]`. `flow_start` is already
    /// normalised to [0, 1].
    pub fn encode_attributes(
        &self,
        key: &FiveTuple,
        flow_start: f64,
        tags: Option<&FlowTags>,
        out: &mut [f32],
        counts: &mut EncodeCounts,
    ) {
        let id = self.ips.dim();
        let seen = self.ips.encode(key.srcip, key.dstip, &mut out[..id]);
        for (name, seen) in ["srcip", "dstip"].into_iter().zip(seen) {
            if !seen {
                EncodeCounts::bump(&mut counts.unseen, name);
            }
        }
        let mut o = id;
        let pd = self.ports.dim();
        for (name, v) in [("srcport", key.srcport), ("dstport", key.dstport)] {
            if !self.ports.encode(u32::from(v), &mut out[o..o + pd]) {
                EncodeCounts::bump(&mut counts.unseen, name);
            }
            o += pd;
        }
        let rd = self.proto.dim();
        if !self.proto.encode(u32::from(key.proto), &mut out[o..o + rd]) {
            EncodeCounts::bump(&mut counts.unseen, "proto");
        }
        o += rd;
        out[o] = flow_start.clamp(0.0, 1.0) as f32;
        if let (Some(heads), Some(tags)) = (self.tag_heads(), tags) {
            heads.write(tags, out);
        }
    }

    /// Encodes an inter-arrival gap (µs) of a chunk with the given span.
    pub fn encode_interarrival(&self, gap_us: i64, span_us: i64) -> f32 {
        let gap = gap_us.max(0) as f64;
        let span = span_us.max(1) as f64;
        let u = if self.interarrival_log1p {
            gap.ln_1p() / span.ln_1p()
        } else {
            gap / span
        };
        u.clamp(0.0, 1.0) as f32
    }

    /// Decodes an inter-arrival value to a gap in µs (not rounded).
    pub fn decode_interarrival(&self, v: f32, span_us: i64) -> f64 {
        let u = if v.is_nan() {
            0.0
        } else {
            f64::from(v).clamp(0.0, 1.0)
        };
        let span = span_us.max(1) as f64;
        if self.interarrival_log1p {
            (u * span.ln_1p()).exp_m1()
        } else {
            u * span
        }
    }

    /// Writes the non-key fields of one record into `out[1..feature_dim]` (the caller writes
    /// the inter-arrival at `out[0]`). `num` and `cat` give the record's value of a field.
    pub(crate) fn encode_fields(
        &self,
        num: impl Fn(usize) -> f64,
        cat: impl Fn(usize) -> String,
        out: &mut [f32],
        counts: &mut EncodeCounts,
    ) {
        let mut o = 1;
        for (i, f) in self.fields.iter().enumerate() {
            match &f.codec {
                FieldCodec::Continuous(c) => {
                    let x = match f.divisor(&self.fields) {
                        Some(j) => ratio_of(num(i), num(j)),
                        None => num(i),
                    };
                    let (v, clamped) = c.encode(x);
                    out[o] = v;
                    if clamped {
                        EncodeCounts::bump(&mut counts.clamped, &f.name);
                    }
                }
                FieldCodec::Categorical(c) => {
                    if !c.encode(&cat(i), &mut out[o..o + c.categories.len()]) {
                        EncodeCounts::bump(&mut counts.unseen, &f.name);
                    }
                }
            }
            o += f.codec.dim();
        }
    }

    /// Decodes one generated attribute row (model output activations); a port-less
    /// protocol's port fields then take the nearest of the values they take in the trace
    /// ([`Semantics::apply_ports`](crate::semantics::Semantics::apply_ports)), and the two
    /// addresses are kept apart where the trace's are
    /// ([`Semantics::distinct_addresses`](crate::semantics::Semantics::distinct_addresses)).
    pub fn decode_attributes(&self, row: &[f32]) -> Result<FlowAttributes> {
        self.decode_attributes_with(
            row,
            &self.ips.decoder(),
            &self.ports.decoder(),
            &self.proto.decoder(),
        )
    }

    fn decode_attributes_with(
        &self,
        row: &[f32],
        ips: &crate::addr::AddrDecoder<'_>,
        ports: &crate::fields::DiscreteDecoder<'_>,
        proto: &crate::fields::DiscreteDecoder<'_>,
    ) -> Result<FlowAttributes> {
        let a = self.attribute_dim();
        if row.len() != a {
            return Err(Error::BadEncoder {
                what: "attribute row".into(),
                message: format!("has {} values, the layout has {a}", row.len()),
            });
        }
        let id = self.ips.dim();
        let pd = self.ports.dim();
        let rd = self.proto.dim();
        let p0 = id;
        let srcport = ports.decode(&row[p0..p0 + pd]);
        let dstport = ports.decode(&row[p0 + pd..p0 + 2 * pd]);
        let pr = proto.decode(&row[p0 + 2 * pd..p0 + 2 * pd + rd]);
        let fs = row[p0 + 2 * pd + rd];
        let (srcip, dstip) = match &self.semantics {
            Some(sem) if sem.distinct_addresses => ips.decode_distinct(&row[0..id]),
            _ => ips.decode(&row[0..id]),
        };
        let mut key = FiveTuple {
            srcip,
            dstip,
            srcport: u16::try_from(srcport).unwrap_or(u16::MAX),
            dstport: u16::try_from(dstport).unwrap_or(u16::MAX),
            proto: u8::try_from(pr).unwrap_or(u8::MAX),
        };
        if let Some(sem) = &self.semantics {
            sem.apply_ports(&mut key);
        }
        Ok(FlowAttributes {
            key,
            flow_start: if fs.is_nan() {
                0.0
            } else {
                f64::from(fs).clamp(0.0, 1.0)
            },
            tags: self.tag_heads().map(|h| h.read(row)),
        })
    }

    /// Turns generated activations of one chunk into records.
    ///
    /// `attributes` is `[n, A]`, `features` `[n, T, F]` (T = [`FittedEncoder::max_len`]),
    /// `lengths[i]` the number of real steps of flow i (≤ T). Per flow: addresses, ports and
    /// protocol by their codecs (the top_bits one-hot, else per-bit argmax; nearest value for
    /// embeddings), `flow_start` denormalised with the chunk's range or through its start
    /// quantiles ([`ChunkInfo::decode_start`]); per step: time = flow
    /// start + cumulative inter-arrival gaps (rounded to µs), continuous fields by inverse
    /// min-max or inverse empirical CDF (+ expm1) in f64 with integer rounding,
    /// categories by argmax; then the learned [`Semantics`](crate::semantics::Semantics), if
    /// any (time and value resolution, implications, per-protocol ranges, the port fields of
    /// port-less protocols). One record per step
    /// below the length, flows in input order.
    pub fn decode_chunk(
        &self,
        chunk: &ChunkInfo,
        attributes: &[f32],
        features: &[f32],
        lengths: &[usize],
    ) -> Result<Records> {
        let n = lengths.len();
        let (a, f, t) = (self.attribute_dim(), self.feature_dim(), self.max_len);
        let shape_err = |message: String| Error::Shape {
            chunk: chunk.index,
            message,
        };
        if attributes.len() != n * a {
            return Err(shape_err(format!(
                "attributes have {} values, [{n}, {a}] needs {}",
                attributes.len(),
                n * a
            )));
        }
        if features.len() != n * t * f {
            return Err(shape_err(format!(
                "features have {} values, [{n}, {t}, {f}] needs {}",
                features.len(),
                n * t * f
            )));
        }
        if let Some((i, &l)) = lengths.iter().enumerate().find(|(_, l)| **l > t) {
            return Err(shape_err(format!(
                "flow {i} has length {l}, above max_len {t}"
            )));
        }
        let ips = self.ips.decoder();
        let ports = self.ports.decoder();
        let proto = self.proto.decoder();
        let span = chunk.span_us();
        let names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        let decoded: Vec<DecodedFlow> = (0..n)
            .into_par_iter()
            .map(|i| {
                let attrs = self.decode_attributes_with(
                    &attributes[i * a..(i + 1) * a],
                    &ips,
                    &ports,
                    &proto,
                )?;
                let start = chunk.decode_start(attrs.flow_start);
                let mut clock = start;
                let mut rows = Vec::with_capacity(lengths[i]);
                for s in 0..lengths[i] {
                    let step = &features[(i * t + s) * f..(i * t + s + 1) * f];
                    clock += self.decode_interarrival(step[0], span);
                    let mut values = self.decode_fields(step);
                    let mut time = clock.round() as i64;
                    if let Some(sem) = &self.semantics {
                        sem.apply(&names, attrs.key.proto, &mut values);
                        time = sem.round_time(time);
                    }
                    rows.push((time, values));
                }
                Ok((attrs.key, rows))
            })
            .collect::<Result<_>>()?;
        let total = decoded.iter().map(|(_, r)| r.len()).sum();
        let mut out = RecordsBuilder::new(self.kind, total);
        for (key, rows) in &decoded {
            for (time, values) in rows {
                out.push(*key, *time, values);
            }
        }
        Ok(out.finish())
    }

    /// Decodes the non-key fields of one feature step (`step[0]` is the inter-arrival).
    pub fn decode_fields(&self, step: &[f32]) -> Vec<Value> {
        let mut o = 1;
        let mut out = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let d = f.codec.dim();
            let x = &step[o..o + d];
            out.push(match &f.codec {
                FieldCodec::Continuous(c) => Value::Num(c.decode(x[0])),
                FieldCodec::Categorical(c) => Value::Cat(c.decode(x)),
            });
            o += d;
        }
        for (i, f) in self.fields.iter().enumerate() {
            if let Some(j) = f.divisor(&self.fields)
                && let (Value::Num(d), Value::Num(r)) = (&out[j], &out[i])
            {
                let x = if *d > 0.0 { *r * *d } else { *r };
                out[i] = Value::Num(x.round());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_head_names_are_recognised_as_tags_and_others_are_not() {
        assert_eq!(tag_in_chunk(7), "tag/in_chunk/007");
        assert!(is_tag_head(TAG_STARTS_HERE) && is_tag_head(&tag_in_chunk(12)));
        assert!(TAG_IN_CHUNK_PREFIX.starts_with(TAG_PREFIX));
        assert!(!is_tag_head(FLOW_START) && !is_tag_head("srcip/top"));
    }
}
