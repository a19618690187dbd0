//! steadyllm's test harness: the fault-injecting mock server, the resilience simulator and
//! helpers shared by the end-to-end tests and the `conformance` CLI.
#![warn(missing_docs)]

pub mod conformance;
pub mod mock;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod sim;
pub mod tls;
