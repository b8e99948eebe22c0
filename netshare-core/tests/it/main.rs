//! Integration tests of the artifact store and the stage contract.

mod records_v2;
mod stage;
mod store;
