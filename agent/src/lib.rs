//! `cairn-agent`: runs inside a cluster, dials out to the hub, and moves the cluster's resources
//! to and from backup locations.
//!
//! - [`link`]: the connection to the hub (the only wire-facing code), reconnecting as needed.
//! - [`discover`]: which resources the cluster serves, and which Cairn never takes.
//! - [`backup`]: listing, filtering and writing objects to the location.
//! - [`restore`]: reading them back, in dependency order, cleaned for the target.
//! - [`report`]: progress and results on their way to the hub.

pub mod backup;
pub mod discover;
pub mod link;
pub mod references;
pub mod report;
pub mod restore;

/// This agent's version, as registered with the hub.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
