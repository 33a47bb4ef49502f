//! `cairn-hub`: Cairn's central server. The `cairn` command-line client and the typed client of
//! the user API are the `cairn-cli` crate (`hub/cli/`), which does not link the hub.
//!
//! - [`config`]: embedded defaults, file, environment.
//! - [`inventory`]: clusters, backups, restores in RocksDB behind a small store trait.
//! - [`location`]: the backup locations the hub hands to agents; [`keyring`]: their keys, by version.
//! - [`operations`]: registration, backups and restores from request to result; workspaces,
//!   location rules, schedules, retention, the catalog read back from buckets.
//! - [`clock`]: the system's, or shifted ahead.
//! - [`pki`]: the hub's TLS identity: its own CA, or a certificate given to it.
//! - [`api`]: the gRPC services (agent channel, user API): the only wire-facing code.
//! - [`server`]: the hub as a running server (what `cairn-hub` runs).

pub mod api;
pub mod clock;
pub mod config;
pub mod inventory;
pub mod keyring;
pub mod location;
pub mod metrics;
pub mod operations;
pub mod pki;
pub mod server;
