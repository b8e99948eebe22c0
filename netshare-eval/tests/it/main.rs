//! Integration tests of netshare-eval: metrics against independently computed values, the
//! report end to end, the baselines' separation on real data, the CLI and store mode.

mod cli;
mod helpers;
mod mixed;
mod reference;
mod report;
mod separation;
