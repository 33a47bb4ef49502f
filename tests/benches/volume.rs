//! `cargo bench --bench volume`: Cairn's volume repository against restic on the same data, in one
//! run, both on a local-directory repository.
//!
//! Data: `../shared/bench/gen_volume.py create` (2 GiB, deterministic; `CAIRN_BENCH_VOLUME_MIB`
//! for another size), then `mutate` (~5% changed) for the incremental run, and `small` (1,000,000
//! files of 1–8 KiB; `CAIRN_BENCH_SMALL_FILES`) for the file-count row. The practical ceiling is
//! `tar -cf - DIR | zstd -T0 -3 > /dev/null` on the same data. Measured per tool: initial backup
//! MB/s, incremental seconds, restore MB/s, repository size after each backup, peak RSS. Cairn is
//! `cairn-agent repo` (this workspace's release build), run as a user runs it.
//!
//! Last line: `volume backup_x=… incremental_x=… restore_x=… size_x=… rss_mib=…`, ratios against
//! restic (speed ratios >1 mean Cairn is faster; `incremental_x` is Cairn's time over restic's;
//! `size_x` Cairn's repository over restic's), `rss_mib` Cairn's peak.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testbed::bench::{drop_caches, du_bytes, generate, mib};

const PASSWORD: &str = "cairn-bench";

/// Time and peak memory of one command.
struct Run {
    seconds: f64,
    rss_mib: u64,
    stdout: String,
}

/// Runs `cmd`, sampling its peak RSS until it exits.
fn measure(mut cmd: Command) -> Result<Run> {
    let what = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id();
    let mut rss = 0;
    let stdout = std::thread::spawn({
        let mut out = child.stdout.take().context("stdout")?;
        move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        }
    });
    let status = loop {
        rss = rss.max(testbed::proc_stats::peak_rss_mib(pid));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = start.elapsed().as_secs_f64();
    let stdout = stdout.join().unwrap_or_default();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        bail!("{what} failed ({status}):\n{stdout}\n{err}");
    }
    Ok(Run {
        seconds,
        rss_mib: rss,
        stdout,
    })
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-c", script]);
    c
}

struct Tools {
    cairn: PathBuf,
    key: PathBuf,
    work: PathBuf,
}

impl Tools {
    fn cairn(&self, repo: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.cairn);
        c.arg("repo")
            .args(args)
            .arg("--location-url")
            .arg(format!("file://{}", repo.display()))
            .arg("--key-file")
            .arg(&self.key);
        c
    }

    fn restic(repo: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("restic");
        c.arg("-r").arg(repo).args(args).env("RESTIC_PASSWORD", PASSWORD);
        c
    }
}

fn snapshot_id(out: &str) -> Result<String> {
    out.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .context("cairn printed no snapshot id")
}

fn main() -> Result<()> {
    let volume_mib: u64 = std::env::var("CAIRN_BENCH_VOLUME_MIB")
        .unwrap_or_else(|_| "2048".into())
        .parse()?;
    let small_files: u64 = std::env::var("CAIRN_BENCH_SMALL_FILES")
        .unwrap_or_else(|_| "1000000".into())
        .parse()?;
    let exe = std::env::current_exe()?;
    let cairn = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cairn-agent"))
        .context("target dir")?;
    if !cairn.exists() {
        bail!(
            "{} missing: run `cargo build --release -p cairn-agent` first",
            cairn.display()
        );
    }
    let work = tempfile::Builder::new()
        .prefix("cairn-bench-volume-")
        .tempdir_in(std::env::temp_dir())?;
    let tools = Tools {
        cairn,
        key: work.path().join("key"),
        work: work.path().to_owned(),
    };
    let data = tools.work.join("data");
    eprintln!("== generating {volume_mib} MiB");
    generate(&[
        "create",
        data.to_str().context("utf-8")?,
        "--size-mib",
        &volume_mib.to_string(),
    ])?;
    let size = du_bytes(&data)?;

    eprintln!("== ceiling: tar | zstd -T0 -3");
    drop_caches();
    let ceiling = measure(sh(&format!(
        "tar -cf - -C {} . | zstd -T0 -3 -q > /dev/null",
        data.display()
    )))?;

    let (c_repo, r_repo) = (tools.work.join("cairn-repo"), tools.work.join("restic-repo"));
    measure(tools.cairn(&c_repo, &["init", "--new-key"]))?;
    measure(Tools::restic(&r_repo, &["init", "--quiet"]))?;

    let data_arg = data.to_str().context("utf-8")?;
    // Both tools back `data` up, each from a cold page cache; then their repositories' sizes.
    let back_up_both = || -> Result<(Run, Run, u64, u64)> {
        drop_caches();
        let cairn = measure(tools.cairn(&c_repo, &["backup", data_arg]))?;
        drop_caches();
        let restic = measure(Tools::restic(&r_repo, &["backup", "--quiet", data_arg]))?;
        Ok((cairn, restic, du_bytes(&c_repo)?, du_bytes(&r_repo)?))
    };
    eprintln!("== initial backup");
    let (c_backup, r_backup, c_size1, r_size1) = back_up_both()?;

    eprintln!("== incremental backup (after gen_volume.py mutate)");
    generate(&["mutate", data_arg])?;
    let (c_incr, r_incr, c_size2, r_size2) = back_up_both()?;

    eprintln!("== restore");
    let c_snapshot = snapshot_id(&c_incr.stdout)?;
    let (c_target, r_target) = (tools.work.join("cairn-out"), tools.work.join("restic-out"));
    drop_caches();
    let c_restore = measure(tools.cairn(
        &c_repo,
        &["restore", &c_snapshot, c_target.to_str().context("utf-8")?],
    ))?;
    drop_caches();
    let r_restore = measure(Tools::restic(
        &r_repo,
        &[
            "restore",
            "latest",
            "--target",
            r_target.to_str().context("utf-8")?,
        ],
    ))?;
    let same = Command::new("diff")
        .arg("-rq")
        .arg(&data)
        .arg(&c_target)
        .status()?
        .success();
    if !same {
        bail!("Cairn's restore differs from the source");
    }
    std::fs::remove_dir_all(&c_target)?;
    std::fs::remove_dir_all(&r_target)?;

    eprintln!("== {small_files} small files");
    let small = tools.work.join("small");
    generate(&[
        "small",
        small.to_str().context("utf-8")?,
        "--files",
        &small_files.to_string(),
    ])?;
    let (c_small_repo, r_small_repo) = (tools.work.join("cairn-small"), tools.work.join("restic-small"));
    measure(tools.cairn(&c_small_repo, &["init"]))?;
    measure(Tools::restic(&r_small_repo, &["init", "--quiet"]))?;
    drop_caches();
    let c_small = measure(tools.cairn(&c_small_repo, &["backup", small.to_str().context("utf-8")?]))?;
    drop_caches();
    let r_small = measure(Tools::restic(
        &r_small_repo,
        &["backup", "--quiet", small.to_str().context("utf-8")?],
    ))?;

    let mbs = |seconds: f64| mib(size) / seconds;
    #[allow(clippy::cast_precision_loss)]
    let fps = |seconds: f64| small_files as f64 / seconds;
    println!();
    println!(
        "volume: {:.0} MiB, {} small files; ceiling tar|zstd -T0 -3: {:.1} s = {:.0} MiB/s",
        mib(size),
        small_files,
        ceiling.seconds,
        mbs(ceiling.seconds)
    );
    println!(
        "{:<8} {:>12} {:>9} {:>13} {:>12} {:>12} {:>12} {:>9} {:>12} {:>9}",
        "tool",
        "backup_MiB/s",
        "rss_MiB",
        "incremental_s",
        "restore_MiB/s",
        "repo1_MiB",
        "repo2_MiB",
        "small_f/s",
        "small_rss",
        "restore_rss"
    );
    for (name, b, i, r, s1, s2, sm) in [
        (
            "cairn", &c_backup, &c_incr, &c_restore, c_size1, c_size2, &c_small,
        ),
        (
            "restic", &r_backup, &r_incr, &r_restore, r_size1, r_size2, &r_small,
        ),
    ] {
        println!(
            "{:<8} {:>12.0} {:>9} {:>13.1} {:>12.0} {:>12.0} {:>12.0} {:>9.0} {:>12} {:>9}",
            name,
            mbs(b.seconds),
            b.rss_mib.max(i.rss_mib),
            i.seconds,
            mbs(r.seconds),
            mib(s1),
            mib(s2),
            fps(sm.seconds),
            sm.rss_mib,
            r.rss_mib
        );
    }
    let backup_x = r_backup.seconds / c_backup.seconds;
    let incremental_x = c_incr.seconds / r_incr.seconds;
    let restore_x = r_restore.seconds / c_restore.seconds;
    #[allow(clippy::cast_precision_loss)]
    let size_x = c_size2 as f64 / r_size2 as f64;
    let rss = c_backup
        .rss_mib
        .max(c_incr.rss_mib)
        .max(c_restore.rss_mib)
        .max(c_small.rss_mib);
    println!(
        "cairn initial backup at {:.2}x the tar|zstd ceiling; small files {:.2}x restic's files/s",
        ceiling.seconds / c_backup.seconds,
        r_small.seconds / c_small.seconds
    );
    println!(
        "volume backup_x={backup_x:.2} incremental_x={incremental_x:.2} restore_x={restore_x:.2} size_x={size_x:.2} rss_mib={rss}"
    );
    Ok(())
}
