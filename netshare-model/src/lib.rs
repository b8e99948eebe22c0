//! DoppelGANger generator and critics in burn: training per chunk, checkpoints, resume and the
//! sampling API used by `netshare-synth`.
//!
//! # Sampling API (stable)
//!
//! ```no_run
//! use netshare_model::TrainedModel;
//! # fn main() -> netshare_model::Result<()> {
//! // A directory with model.json and weights-000.safetensors ...; in store mode use
//! // `TrainedModel::from_inputs(ctx.inputs())` (inputs named after the model's file names).
//! let model = TrainedModel::load("model-dir")?;
//! for chunk in 0..model.n_chunks() {
//!     // [n, A] row-major; softmax heads are probabilities, sigmoid / tanh heads their values,
//!     // in the order of model.layout().attributes.
//!     let attrs = model.sample_attributes(chunk, 1000, 7);
//!     // Features [n, T, F] in the order of model.layout().features, zero after each flow's end,
//!     // and the lengths (records up to and including the first gen_flag 'end').
//!     let (features, lengths) = model.sample_features(chunk, &attrs, 8);
//!     assert_eq!(features.len(), lengths.len() * model.max_len() * model.feat_dim());
//! }
//! # Ok(()) }
//! ```
//!
//! Both calls are deterministic in `(weights, chunk, n or attributes, seed)`, run in batches of
//! the config's `batch_size` (batch norm uses batch statistics, so a row's value depends on the
//! other rows of its batch, which is seeded too), and panic only on a chunk index out of range
//! or an attribute buffer whose length is not a multiple of A (`try_*` variants return those as
//! errors). `sample_features` conditions on attributes with softmax heads turned into hard
//! one-hots, so it accepts both sampled probabilities and exact one-hots (e.g. a flow's
//! attributes copied from an earlier chunk).
//!
//! # Training
//!
//! [`fn@train`] trains chunk 0 from scratch, then every other chunk from chunk 0's weights for
//! `fine_tune_fraction` of the budget, in parallel. The stage body ([`stage::body`]) adds
//! checkpoints in the run's scratch directory, so a killed run resumes to the same bytes.
//!
//! # Benchmark and GPU
//!
//! `RAYON_NUM_THREADS=2 cargo xtask bench train -- [DIR ...]` times generator steps (each with
//! its critic steps) at the `default` and `netshare` sizes, over T = 2, 16, 200 of random
//! UGR16-shaped tensors or on the encoder's tensors in each DIR, next to `bench/torch_step.py`
//! (the same architecture in PyTorch), and names the CPU. The `cuda`
//! feature adds burn's CUDA backend (`--device cuda`); `scripts/gpu-step-rate.sh` builds it and
//! prints the GPU step rate.
#![deny(missing_docs)]

mod adam;
mod alloc;
mod checkpoint;
pub mod config;
pub mod data;
mod ema;
pub mod error;
mod features;
mod heads;
mod host;
pub mod log;
mod lstm;
pub mod model_file;
mod nets;
pub mod parts;
pub mod plan;
mod quality;
pub mod sample;
mod seed;
pub mod stage;
mod step;
pub mod train;
pub mod weights;

#[doc(hidden)]
pub mod testing;

use netshare_core::stage::StageDef;

pub use alloc::tune_allocator;
pub use config::{DpConfig, Keep, ModelConfig, Profile};
pub use data::Encoded;
pub use error::{Error, Result};
pub use lstm::{
    MatmulKernels, choose_matmul_kernels, kernels_for, live_row_gradients, matmul_kernels,
};
pub use sample::{Continued, TrainedModel};
pub use step::LstmForm;
pub use train::{ModelFile, StepTiming, TrainOptions, Trained, measure_steps, train, train_from};

/// This stage's identity in the artifact store. Version 2: critic gradients derived by hand,
/// fused Adam and grouped generator passes (same maths, different rounding, so new bytes).
/// Version 3: the feature generator's LSTM fused on the CPU (same maths, new rounding).
/// Version 4: `train-log.csv` gains the quick quality score at checkpoints (`quality`), and a
/// time budget may end training early (weights unchanged for a given iteration count).
/// Version 5: DP-SGD (`dp`) with the privacy ledger in `model.json`, and the optional `init`
/// input (runs without them give the bytes of version 4). The moving average of the
/// generator's weights (`ema_decay`) came later under the same version: a config without it
/// serialises, and trains, exactly as before, and one with it was refused. The `default`
/// profile sets it to 0.99; a config resolves its profile before it is keyed, so runs stored
/// with the old default keep their keys and a new default run gets a new one.
pub const STAGE: StageDef = StageDef {
    name: "model",
    version: 5,
};
