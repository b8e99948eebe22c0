//! Integration tests of the encode stage: round trips, chunks and tags, embeddings, store mode.

mod common;
mod embedding;
mod pipeline;
mod private;
mod roundtrip;
mod stage;
