//! Integration tests of the artifact store and the stage contract.

mod stage;
mod store;
