//! `cairn-hub`: Cairn's central server, and the `cairn` command-line client.
//!
//! - [`config`]: embedded defaults, file, environment.
//! - [`inventory`]: clusters, backups, restores in RocksDB behind a small store trait.
//! - [`location`]: the backup locations the hub hands to agents.
//! - [`operations`]: registration, backups and restores from request to result; workspaces,
//!   location rules, schedules, retention, the catalog read back from buckets.
//! - [`schedule`]: cron timetables and fleet jitter; [`clock`]: the system's, or shifted ahead.
//! - [`api`]: the gRPC services (agent channel, user API): the only wire-facing code.
//! - [`server`]: the hub as a running server (what `cairn-hub` runs).
//! - [`cli`]: the `cairn` command.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod inventory;
pub mod location;
pub mod operations;
pub mod schedule;
pub mod server;
