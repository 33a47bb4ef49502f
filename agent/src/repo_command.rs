//! `cairn-agent repo init|backup|restore|snapshots|stats`: a repository at an `object_store` URL
//! (`file:///…`, `s3://…`, endpoint and credentials from the environment), opened with a key file
//! (one line: 32 random bytes in base64, the form the hub hands agents). Progress bars on a
//! terminal, quiet otherwise.

use anyhow::{Context, Result};
use cairn_agent::volume::{self, Repository, backup::Counters};
use cairn_proto::model::{Location, LocationName};
use cairn_proto::seal::Key;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Args)]
pub struct RepoArgs {
    /// The repository's location: an object_store URL.
    #[arg(long, global = true, env = "CAIRN_REPO_URL")]
    location_url: Option<String>,
    /// The key file: one line, 32 random bytes in base64.
    #[arg(long, global = true, env = "CAIRN_REPO_KEY_FILE")]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Create a repository; with --new-key, also write a new random key file first.
    Init {
        /// Write a new key to --key-file (which must not exist).
        #[arg(long)]
        new_key: bool,
    },
    /// Back up a directory; prints the snapshot id, bytes read and bytes added.
    Backup {
        /// The directory.
        path: PathBuf,
        /// The host (cluster) the snapshot is recorded for; parents are looked up by it.
        #[arg(long, default_value = "local")]
        host: String,
    },
    /// Restore a snapshot into a directory.
    Restore {
        /// Snapshot id (a unique prefix will do).
        snapshot: String,
        /// Target directory.
        target: PathBuf,
        /// Keep setuid and setgid bits (dropped by default).
        #[arg(long)]
        keep_setid: bool,
    },
    /// List snapshots, oldest first, id first.
    Snapshots,
    /// Blobs, packs and snapshots in the repository, and its size.
    Stats,
    /// Forget all but the last N snapshots of each host and path, and collect unused packs
    /// (deleted once planned for longer than the grace period). Safe while backups run.
    Prune {
        /// Snapshots kept per host and path.
        #[arg(long)]
        keep_last: Option<usize>,
        /// How long unused packs stay before deletion: longer than your longest backup.
        #[arg(long, default_value = "24h")]
        grace: humantime::Duration,
    },
    /// Check that every pack is there; with --read-data, read and open every pack and blob.
    Check {
        /// Read every pack and open every blob.
        #[arg(long)]
        read_data: bool,
    },
}

pub async fn run(args: RepoArgs) -> Result<()> {
    let url = args.location_url.context("--location-url is required")?;
    let key_file = args.key_file.context("--key-file is required")?;
    let location = Location {
        name: LocationName::new("repo")?,
        url: url.clone(),
        options: Default::default(),
    };
    let store = cairn_proto::format::open_location(&location)?;
    if let Verb::Init { new_key } = args.verb {
        let kek = if new_key {
            Key::create_file(&key_file)?
        } else {
            Key::read_file(&key_file)?
        };
        Repository::init(store, &url, &kek).await?;
        println!("repository created at {url}");
        return Ok(());
    }
    let kek = Key::read_file(&key_file)?;
    let repo =
        Arc::new(Repository::open(store, &url, &kek, &format!("key file {}", key_file.display())).await?);
    match args.verb {
        Verb::Init { .. } => unreachable!("handled above"),
        Verb::Backup { path, host } => {
            let counters = Arc::new(Counters::default());
            let bar = progress(&counters, "read");
            let origin = volume::backup::Origin {
                host,
                ..Default::default()
            };
            let s = volume::backup::run(repo, &path, origin, counters).await;
            bar.finish_and_clear();
            let s = s?;
            println!(
                "snapshot {} saved: {} files, {} dirs, {} bytes; read {} files, {} bytes; added {} blobs, {} bytes{}",
                s.snapshot,
                s.files,
                s.dirs,
                s.bytes,
                s.files_read,
                s.bytes_read,
                s.blobs_added,
                s.bytes_added,
                s.parent.map(|p| format!(" (parent {p})")).unwrap_or_default()
            );
        }
        Verb::Restore {
            snapshot,
            target,
            keep_setid,
        } => {
            let counters = Arc::new(Counters::default());
            let bar = progress(&counters, "written");
            let options = volume::restore::Options { keep_setid };
            let s = volume::restore::run(repo, &snapshot, &target, counters, options).await;
            bar.finish_and_clear();
            let s = s?;
            println!(
                "restored {} files, {} dirs, {} bytes, {} hard links into {}{}",
                s.files,
                s.dirs,
                s.bytes,
                s.links,
                target.display(),
                if s.skipped > 0 {
                    format!(" ({} devices, FIFOs or sockets skipped)", s.skipped)
                } else {
                    String::new()
                }
            );
        }
        Verb::Snapshots => {
            for (id, s) in repo.snapshots().await? {
                let time = cairn_proto::model::Timestamp::from_unix_ms(s.time_unix_ms)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                println!(
                    "{id} {time} {} {} {} files {} bytes",
                    s.host, s.path, s.files, s.bytes
                );
            }
        }
        Verb::Check { read_data } => {
            let report = volume::check::run(&repo, read_data).await?;
            for why in report.damaged.values() {
                eprintln!("{why}");
            }
            for file in &report.files {
                eprintln!("damaged: {file}");
            }
            if !report.damaged.is_empty() {
                anyhow::bail!(
                    "{} of {} packs damaged or missing; {} files affected",
                    report.damaged.len(),
                    report.packs,
                    report.files.len()
                );
            }
            println!("no errors: {} packs, {} blobs read", report.packs, report.blobs);
        }
        Verb::Stats => {
            let index = repo.load_index().await?;
            let snapshots = repo.snapshots().await?;
            let stored: u64 = repo.stored_packs().await?.iter().map(|(_, size, _)| size).sum();
            println!(
                "{} snapshots, {} blobs in {} packs, {stored} bytes stored",
                snapshots.len(),
                index.len(),
                index.packs().count()
            );
        }
        Verb::Prune { keep_last, grace } => {
            let options = volume::prune::Options {
                keep_last,
                grace: grace.into(),
            };
            let r = volume::prune::run(&repo, &options).await?;
            println!(
                "forgot {} snapshots, kept {}; deleted {} packs ({} bytes); {} packs planned for deletion after {grace}",
                r.forgotten, r.kept, r.deleted, r.deleted_bytes, r.planned
            );
        }
    }
    Ok(())
}

/// A byte-counting bar on a terminal; hidden otherwise.
fn progress(counters: &Arc<Counters>, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let (bar2, counters) = (bar.clone(), counters.clone());
    tokio::spawn(async move {
        while !bar2.is_finished() {
            let bytes = counters.bytes_read.load(Ordering::Relaxed);
            let files = counters.files.load(Ordering::Relaxed);
            bar2.set_message(format!("{files} files, {} {what}", indicatif::HumanBytes(bytes)));
            bar2.tick();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}
