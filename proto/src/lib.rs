//! Cairn's contract between hub, agent and bucket.
//!
//! - [`pb`]: the generated gRPC services and messages (`proto/cairn/v1/*.proto`). Only
//!   [`convert`], the hub's `api` and the agent's `link` touch them.
//! - [`model`]: the domain types the rest of Cairn speaks.
//! - [`convert`]: the one conversion between the two, wire optionals made required or an error.
//! - [`format`]: the bucket layout and encodings (`proto/FORMAT.md`): the only place that builds keys.

pub mod convert;
pub mod format;
pub mod model;

/// Generated code; see `proto/cairn/v1/`.
#[allow(missing_docs, clippy::all, clippy::pedantic)] // generated
pub mod pb {
    tonic::include_proto!("cairn.v1");
}
