//! The field layout of training tensors: which dimensions belong to which field and which
//! output activation produces them. Written by the encoder, read by the model (to build its
//! output heads) and by the synthesiser (to decode), so neither ever guesses.

use serde::{Deserialize, Serialize};

/// The activation of one output head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// A categorical head: softmax over `dim` classes (one-hot targets).
    Softmax,
    /// Values in [0, 1].
    Sigmoid,
    /// Values in [-1, 1].
    Tanh,
}

/// One output head: `dim` consecutive dimensions of one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// The field this head encodes, e.g. `srcip/bit07`, `srcport`, `flow_start`.
    pub field: String,
    /// Number of dimensions.
    pub dim: usize,
    /// Output activation.
    pub activation: Activation,
}

/// The layout of attributes (per flow) and features (per record of a flow).
///
/// The two-way `gen_flag` is not part of `features`: tensors carry it separately as a 0/1 mask
/// and the model adds its own two-way head for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Attribute heads, in tensor order.
    pub attributes: Vec<Segment>,
    /// Feature heads, in tensor order.
    pub features: Vec<Segment>,
    /// Records the model emits per LSTM step. The encoder's setting (it pads every flow's time
    /// length T to a multiple of it); the model reads it from here, so it is set in one place.
    /// Layouts written before it was carried read as 1 (then the default of both configs).
    #[serde(default = "one")]
    pub sample_len: usize,
    /// The encoder ran in private mode: nothing it stores was fitted on the records it
    /// encoded. A model trained with DP-SGD requires it (otherwise vocabularies and bounds
    /// would carry the private records outside the mechanism). Absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

impl Segment {
    /// A head of `dim` dimensions of `field` with `activation`.
    pub fn new(field: &str, dim: usize, activation: Activation) -> Segment {
        Segment {
            field: field.to_string(),
            dim,
            activation,
        }
    }
}

fn one() -> usize {
    1
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            attributes: Vec::new(),
            features: Vec::new(),
            sample_len: 1,
            private: false,
        }
    }
}

impl Layout {
    /// Total attribute dimensions.
    pub fn attribute_dim(&self) -> usize {
        self.attributes.iter().map(|s| s.dim).sum()
    }

    /// Total feature dimensions per record.
    pub fn feature_dim(&self) -> usize {
        self.features.iter().map(|s| s.dim).sum()
    }

    /// `(offset, segment)` for each attribute head.
    pub fn attribute_offsets(&self) -> Vec<(usize, &Segment)> {
        offsets(&self.attributes)
    }

    /// `(offset, segment)` for each feature head.
    pub fn feature_offsets(&self) -> Vec<(usize, &Segment)> {
        offsets(&self.features)
    }

    /// A human-readable table: one line per run of heads of one field.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (title, segs) in [
            ("attributes", &self.attributes),
            ("features", &self.features),
        ] {
            let total: usize = segs.iter().map(|x| x.dim).sum();
            s.push_str(&format!("{title} ({total} dims)\n"));
            for (off, seg) in offsets(segs) {
                s.push_str(&format!(
                    "  [{:>4}..{:>4})  {:<8} {}\n",
                    off,
                    off + seg.dim,
                    format!("{:?}", seg.activation).to_lowercase(),
                    seg.field
                ));
            }
        }
        s
    }
}

fn offsets(segs: &[Segment]) -> Vec<(usize, &Segment)> {
    let mut off = 0;
    segs.iter()
        .map(|s| {
            let o = off;
            off += s.dim;
            (o, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_running_sums_of_dims() {
        let l = Layout {
            attributes: vec![
                Segment {
                    field: "a".into(),
                    dim: 2,
                    activation: Activation::Softmax,
                },
                Segment {
                    field: "b".into(),
                    dim: 1,
                    activation: Activation::Sigmoid,
                },
                Segment {
                    field: "c".into(),
                    dim: 10,
                    activation: Activation::Tanh,
                },
            ],
            features: vec![],
            sample_len: 1,
            private: false,
        };
        let offs: Vec<usize> = l.attribute_offsets().iter().map(|(o, _)| *o).collect();
        assert_eq!(offs, vec![0, 2, 3]);
        assert_eq!(l.attribute_dim(), 13);
        assert!(l.describe().contains("[   3..  13)  tanh     c"));
    }
}
