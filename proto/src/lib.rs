//! Cairn's contract between hub, agent and bucket.
//!
//! - [`pb`]: the generated gRPC services and messages (`proto/cairn/v1/*.proto`). Only
//!   [`convert`], the hub's `api` and the agent's `link` touch them.
//! - [`model`]: the domain types the rest of Cairn speaks.
//! - [`convert`]: the one conversion between the two, wire optionals made required or an error.
//! - [`process`]: the start-up every binary shares (TLS provider, logs).
//! - [`schedule`]: timetables and the names of a schedule's backups, for hub and agent alike.
//! - [`format`]: the bucket layout and encodings (`proto/FORMAT.md`): the only place that builds keys.

pub mod convert;
pub mod dial;
pub mod format;
pub mod join;
pub mod model;
pub mod process;
pub mod schedule;
pub mod seal;

/// Generated code; see `proto/cairn/v1/`.
#[allow(missing_docs, clippy::all, clippy::pedantic)] // generated
pub mod pb {
    tonic::include_proto!("cairn.v1");
}

/// Largest gRPC message hub and agent exchange: a restore's per-item results come in one message.
pub const MAX_MESSAGE: usize = 64 << 20;

/// An error and its causes on one line, each once (`outer: cause: root cause`): what a user reads
/// in the CLI, in per-item results and in logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some libraries (object_store, reqwest) already print their cause in their own message:
        // say each thing once.
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
