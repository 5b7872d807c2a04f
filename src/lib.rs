//! ntp-provision: converge an NTP daemon on Debian and Ubuntu nodes.
//!
//! One direction, each stage a value:
//! `plan` (validated YAML) -> `facts` (read-only probes) -> `diff`
//! (a pure changeset) -> `apply` (executors) -> `report` (text or JSON and
//! an exit code). `lint` checks the daemon config a plan would write before
//! anything changes; `verify` probes the daemon for DRDoS amplification.
//! `engine` runs the stages for one plan or apply; `app` (the CLI) and
//! `ansible` (the Ansible module) are its adapters; `process` is the only module that starts programs.

pub mod ansible;
pub mod app;
pub mod apply;
pub mod cli;
pub mod daemons;
pub mod diff;
pub mod engine;
pub mod facts;
/// The hand-written fake node: test-only, never in the release binary.
#[cfg(test)]
pub(crate) mod fake;
pub mod generate;
pub mod interrupt;
pub mod lint;
pub mod names;
pub mod net;
pub mod plan;
pub mod process;
pub mod report;
pub mod runlock;
pub mod schema;
pub mod status;
pub mod verify;
pub mod version;
pub mod wire;
