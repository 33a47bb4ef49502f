//! The volume repository through `cairn-agent repo`, as an operator runs it: a directory backed up
//! and restored byte for byte with modes, times, symlinks, hard links and holes; a second backup
//! that reads only what changed; a wrong key refused before anything is written; the same on S3;
//! a backup killed half-way that, run again, uploads only what it had not.

use anyhow::{Context, Result, bail};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use testbed::cairn::workspace_bin;
use testbed::storage::{LocalDir, S3Server, files_under};
use testbed::tree::{picture, random_bytes, write};

/// `cairn-agent repo ARGS… --location-url URL --key-file KEY` with `env`; stdout, or the failure.
fn repo(url: &str, key: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    let out = Command::new(workspace_bin("cairn-agent")?)
        .arg("repo")
        .args(args)
        .args(["--location-url", url])
        .arg("--key-file")
        .arg(key)
        .envs(env.iter().copied())
        .output()?;
    Ok(out)
}

fn ok(out: std::process::Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "cairn-agent repo failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A new repository under `dir` (key in `dir/key`) holding one backup of `src`: its URL, key
/// file and snapshot id.
fn backed_up(dir: &Path, src: &Path) -> Result<(String, std::path::PathBuf, String)> {
    let url = format!("file://{}", dir.join("repo").display());
    let key = dir.join("key");
    ok(repo(&url, &key, &["init", "--new-key"], &[])?)?;
    let out = ok(repo(
        &url,
        &key,
        &["backup", src.to_str().context("utf-8")?],
        &[],
    )?)?;
    let snapshot = out.split_whitespace().nth(1).context("snapshot id")?.to_owned();
    Ok((url, key, snapshot))
}

/// A number printed before `word` in cairn's summary line.
fn number_before(text: &str, word: &str) -> Result<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.trim_end_matches([',', ';']) == word)
        .with_context(|| format!("{word:?} in {text}"))?;
    Ok(words[i - 1].parse()?)
}

#[test]
fn a_volume_comes_back_byte_for_byte_with_modes_times_links_and_holes() -> Result<()> {
    let dir = LocalDir::new()?;
    let src = dir.path().join("volume");
    let t = |secs: u64| SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000 + secs, 123_456_789);
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i} of a log\n").into_bytes())
        .collect();
    write(&src.join("logs/app.log"), &text, 0o644, t(1))?;
    write(&src.join("media/blob.bin"), &random_bytes(5 << 20), 0o600, t(2))?;
    write(&src.join("bin/run.sh"), b"#!/bin/sh\necho hi\n", 0o755, t(3))?;
    write(&src.join("empty"), b"", 0o640, t(4))?;
    std::os::unix::fs::symlink("logs/app.log", src.join("latest"))?;
    std::os::unix::fs::symlink("nowhere", src.join("dangling"))?;
    std::fs::hard_link(src.join("bin/run.sh"), src.join("bin/run-again.sh"))?;
    let sparse = src.join("data/sparse.img");
    std::fs::create_dir_all(sparse.parent().context("parent")?)?;
    let f = std::fs::File::create(&sparse)?;
    f.set_len(64 << 20)?;
    std::os::unix::fs::FileExt::write_at(&f, b"in the middle", 30 << 20)?;
    drop(f);
    std::fs::set_permissions(src.join("media"), std::fs::Permissions::from_mode(0o750))?;

    let (url, key, snapshot) = backed_up(dir.path(), &src)?;
    let listed = ok(repo(&url, &key, &["snapshots"], &[])?)?;
    assert!(listed.starts_with(&snapshot), "{listed}");

    let target = dir.path().join("restored");
    ok(repo(
        &url,
        &key,
        &["restore", &snapshot[..12], target.to_str().context("utf-8")?],
        &[],
    )?)?;
    assert_eq!(picture(&src)?, picture(&target)?, "the restored tree differs");
    let (a, b) = (
        std::fs::metadata(target.join("bin/run.sh"))?,
        std::fs::metadata(target.join("bin/run-again.sh"))?,
    );
    assert_eq!(a.ino(), b.ino(), "hard links are restored as links");
    let allocated = std::fs::metadata(target.join("data/sparse.img"))?.blocks() * 512;
    assert!(
        allocated < 1 << 20,
        "the sparse file took {allocated} bytes on disk"
    );
    // Nothing in the bucket is readable text: the log's lines are sealed.
    for entry in files_under(&dir.path().join("repo"))? {
        let bytes = std::fs::read(&entry)?;
        assert!(
            !bytes.windows(16).any(|w| w == b"line 1 of a log\n"),
            "{} holds plaintext",
            entry.display()
        );
    }
    Ok(())
}

#[test]
fn a_second_backup_reads_only_changed_files_and_adds_only_new_chunks() -> Result<()> {
    let dir = LocalDir::new()?;
    let src = dir.path().join("volume");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for i in 0..100 {
        write(&src.join(format!("f{i:03}")), &random_bytes(200_000), 0o644, old)?;
    }
    let url = format!("file://{}", dir.path().join("repo").display());
    let key = dir.path().join("key");
    ok(repo(&url, &key, &["init", "--new-key"], &[])?)?;
    let first = ok(repo(
        &url,
        &key,
        &["backup", src.to_str().context("utf-8")?],
        &[],
    )?)?;
    assert_eq!(number_before(&first, "files")?, 100, "{first}");

    // 5% of the data changes.
    for i in [3, 17, 42, 64, 99] {
        write(
            &src.join(format!("f{i:03}")),
            &random_bytes(200_000),
            0o644,
            SystemTime::now(),
        )?;
    }
    let second = ok(repo(
        &url,
        &key,
        &["backup", src.to_str().context("utf-8")?],
        &[],
    )?)?;
    let words: Vec<&str> = second.split_whitespace().collect();
    let read_at = words.iter().position(|w| *w == "read").context("read")?;
    assert_eq!(
        words[read_at + 1],
        "5",
        "only the changed files are read: {second}"
    );
    // Five new data chunks (each file is one chunk) and the directory's new tree.
    assert_eq!(number_before(&second, "blobs")?, 6, "{second}");
    assert!(second.contains("(parent "), "{second}");
    Ok(())
}

#[test]
fn a_wrong_key_is_refused_before_anything_is_written() -> Result<()> {
    let dir = LocalDir::new()?;
    let src = dir.path().join("volume");
    write(&src.join("a"), b"data", 0o644, SystemTime::now())?;
    let url = format!("file://{}", dir.path().join("repo").display());
    let key = dir.path().join("key");
    ok(repo(&url, &key, &["init", "--new-key"], &[])?)?;
    ok(repo(
        &url,
        &key,
        &["backup", src.to_str().context("utf-8")?],
        &[],
    )?)?;
    let before = files_under(&dir.path().join("repo"))?;

    let wrong = dir.path().join("wrong-key");
    cairn_proto::seal::Key::create_file(&wrong)?;
    let out = repo(&url, &wrong, &["backup", src.to_str().context("utf-8")?], &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "wrong key: key file {} opens none of the repository's keys; nothing was written",
            wrong.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        files_under(&dir.path().join("repo"))?,
        before,
        "something was written"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_repository_code_runs_on_s3_with_its_settings_from_the_environment() -> Result<()> {
    let s3 = S3Server::start().await?;
    s3.create_bucket("volumes").await?;
    let dir = LocalDir::new()?;
    let src = dir.path().join("volume");
    write(
        &src.join("nested/data.bin"),
        &random_bytes(3 << 20),
        0o600,
        SystemTime::now(),
    )?;
    std::os::unix::fs::symlink("nested/data.bin", src.join("link"))?;
    let endpoint = s3.endpoint().to_owned();
    let env = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let (url, key) = ("s3://volumes/cluster-a", dir.path().join("key"));
    let (src_text, target) = (src.to_str().context("utf-8")?.to_owned(), dir.path().join("out"));
    let target_text = target.to_str().context("utf-8")?.to_owned();
    let key2 = key.clone();
    ok(repo(url, &key2, &["init", "--new-key"], &env)?)?;
    let out = ok(repo(url, &key2, &["backup", &src_text], &env)?)?;
    let snapshot = out.split_whitespace().nth(1).context("snapshot id")?.to_owned();
    ok(repo(url, &key2, &["restore", &snapshot, &target_text], &env)?)?;
    assert_eq!(picture(&src)?, picture(&target)?);
    let store = s3.store("volumes")?;
    let listed: Vec<_> =
        futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&"cluster-a/volumes".into()))).await?;
    assert!(
        listed
            .iter()
            .any(|m| m.location.as_ref().starts_with("cluster-a/volumes/data/")),
        "no pack in the bucket"
    );
    Ok(())
}

#[test]
fn a_corrupted_pack_is_named_by_check_and_restore_and_the_rest_restores() -> Result<()> {
    let dir = LocalDir::new()?;
    let src = dir.path().join("volume");
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for i in 0..6 {
        write(
            &src.join(format!("file-{i}.bin")),
            &random_bytes(3 << 20),
            0o644,
            when,
        )?;
        std::fs::hard_link(
            src.join(format!("file-{i}.bin")),
            src.join(format!("link-{i}.bin")),
        )?;
    }
    let (url, key, snapshot) = backed_up(dir.path(), &src)?;
    let clean = ok(repo(&url, &key, &["check", "--read-data"], &[])?)?;
    assert!(clean.starts_with("no errors"), "{clean}");

    // Flip a byte a quarter into the largest pack: inside a data blob, far from its header.
    let packs: Vec<_> = files_under(&dir.path().join("repo/volumes/data"))?;
    let largest = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .context("a pack")?;
    let mut bytes = std::fs::read(largest)?;
    let at = bytes.len() / 4;
    bytes[at] ^= 0xff;
    std::fs::write(largest, &bytes)?;

    let checked = repo(&url, &key, &["check", "--read-data"], &[])?;
    let check_err = String::from_utf8_lossy(&checked.stderr).into_owned();
    assert!(!checked.status.success(), "{check_err}");
    let pack_name = largest.file_name().and_then(|n| n.to_str()).context("name")?;
    assert!(
        check_err.contains(&format!(
            "pack {pack_name} is corrupt: its bytes do not hash to its name"
        )),
        "{check_err}"
    );
    let named: Vec<&str> = check_err
        .lines()
        .filter_map(|l| l.strip_prefix("damaged: "))
        .filter_map(|l| l.rsplit('/').next())
        .collect();
    assert!(!named.is_empty(), "check names no file: {check_err}");

    let target = dir.path().join("out");
    let restored = repo(
        &url,
        &key,
        &["restore", &snapshot, target.to_str().context("utf-8")?],
        &[],
    )?;
    let restore_err = String::from_utf8_lossy(&restored.stderr).into_owned();
    assert!(!restored.status.success(), "{restore_err}");
    assert!(restore_err.contains("could not be restored"), "{restore_err}");
    let mut failed = 0;
    for i in 0..6 {
        let name = format!("file-{i}.bin");
        let link = target.join(format!("link-{i}.bin"));
        if restore_err.contains(&format!("(of file {}", target.join(&name).display())) {
            failed += 1;
            assert!(
                named.contains(&name.as_str()),
                "restore failed {name}, check did not name it: {check_err}"
            );
            // Its hard link fails with it, named, instead of failing the whole restore.
            assert!(
                restore_err.contains(&format!("{}: a hard link to", link.display())),
                "{restore_err}"
            );
        } else {
            assert_eq!(
                std::fs::read(src.join(&name))?,
                std::fs::read(target.join(&name))?,
                "{name} differs"
            );
            let inode = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
            assert_eq!(inode(&link)?, inode(&target.join(&name))?, "{name}'s link");
        }
    }
    assert!(failed >= 1, "no file failed: {restore_err}");
    Ok(())
}

/// `cairn-agent repo backup PATH --host HOST` started in the background.
fn spawn_backup(url: &str, key: &Path, src: &Path, host: &str) -> Result<std::process::Child> {
    Ok(Command::new(workspace_bin("cairn-agent")?)
        .args(["repo", "backup", "--host", host, "--location-url", url])
        .arg("--key-file")
        .arg(key)
        .arg(src)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?)
}

/// Waits until process `pid` has a file under `dir` open.
fn reading(pid: u32, dir: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))?
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target.starts_with(dir));
        if open {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("process {pid} never opened a file under {}", dir.display())
}

#[test]
fn two_writers_share_a_repository_while_a_prune_runs() -> Result<()> {
    let dir = LocalDir::new()?;
    let (x, y) = (dir.path().join("x"), dir.path().join("y"));
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for i in 0..24 {
        write(&x.join(format!("f{i:02}")), &random_bytes(4 << 20), 0o644, old)?;
    }
    write(&y.join("other"), &random_bytes(1 << 20), 0o644, old)?;
    let url = format!("file://{}", dir.path().join("repo").display());
    let key = dir.path().join("key");
    ok(repo(&url, &key, &["init", "--new-key"], &[])?)?;
    // Cluster east backed up X, then (the same path now holding Y) Y: X's chunks are used only
    // by east's first snapshot, which `prune --keep-last 1` forgets.
    let path = dir.path().join("east");
    for data in [&x, &y] {
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(data, &path)?;
        let east = ["backup", path.to_str().context("utf-8")?, "--host", "east"];
        ok(repo(&url, &key, &east, &[])?)?;
    }

    // Two more clusters back X up at once, deduplicating against X's chunks, and a prune that
    // forgets east's first snapshot runs while they do.
    let west = spawn_backup(&url, &key, &x, "west")?;
    let north = spawn_backup(&url, &key, &x, "north")?;
    // Both have read the index once they read X's files.
    reading(west.id(), &x)?;
    reading(north.id(), &x)?;
    let pruned = ok(repo(&url, &key, &["prune", "--keep-last", "1"], &[])?)?;
    let (mut west, mut north) = (west, north);
    let overlapped = west.try_wait()?.is_none() && north.try_wait()?.is_none();
    let (west, north) = (west.wait_with_output()?, north.wait_with_output()?);
    let (west, north) = (ok(west)?, ok(north)?);
    assert!(
        overlapped,
        "the prune ended after the backups: it must run during them ({pruned})"
    );
    assert!(pruned.starts_with("forgot 1 snapshots, kept 1"), "{pruned}");
    assert!(
        !pruned.contains(" 0 packs planned"),
        "X's packs are planned: {pruned}"
    );
    // Dedup holds: neither stored X's data again.
    for out in [&west, &north] {
        assert!(
            number_before(out, "blobs")? <= 1,
            "only a new tree at most: {out}"
        );
    }

    // The planned packs are in use again: even a prune with no grace keeps them.
    let again = ok(repo(
        &url,
        &key,
        &["prune", "--keep-last", "1", "--grace", "0s"],
        &[],
    )?)?;
    assert!(again.contains("deleted 0 packs"), "{again}");
    let checked = ok(repo(&url, &key, &["check", "--read-data"], &[])?)?;
    assert!(checked.starts_with("no errors"), "{checked}");
    let snapshot = west.split_whitespace().nth(1).context("snapshot id")?;
    let target = dir.path().join("restored");
    ok(repo(
        &url,
        &key,
        &["restore", snapshot, target.to_str().context("utf-8")?],
        &[],
    )?)?;
    assert_eq!(picture(&target)?, picture(&x)?, "west's snapshot restores whole");

    // Once no snapshot uses X, a prune plans its packs and the next one past the grace period
    // deletes them.
    let before = ok(repo(&url, &key, &["stats"], &[])?)?;
    ok(repo(&url, &key, &["prune", "--keep-last", "0"], &[])?)?;
    let collected = ok(repo(&url, &key, &["prune", "--grace", "0s"], &[])?)?;
    let deleted = number_before(&collected, "packs")?;
    assert!(
        deleted >= 12,
        "X's packs (96 MiB) deleted: {collected}; before: {before}"
    );
    let after = ok(repo(&url, &key, &["stats"], &[])?)?;
    assert!(
        after.starts_with("0 snapshots, 0 blobs in 0 packs, 0 bytes"),
        "{after}"
    );
    Ok(())
}

/// Pack files under `repo` (the data objects), with their sizes.
fn packs(repo: &Path) -> Result<std::collections::HashMap<std::path::PathBuf, u64>> {
    let data = repo.join("volumes/data");
    if !data.exists() {
        return Ok(Default::default());
    }
    files_under(&data)?
        .into_iter()
        // Whole objects only: a write cut by the kill leaves no named object.
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64)
        })
        .map(|p| Ok((p.clone(), std::fs::metadata(&p)?.len())))
        .collect()
}

#[test]
fn a_backup_killed_half_way_uploads_again_less_than_a_tenth_of_what_it_had_uploaded() -> Result<()> {
    const FILES: usize = 16;
    const SIZE: usize = 64 << 20; // 1 GiB in all, incompressible
    let dir = LocalDir::new()?;
    let src = dir.path().join("volume");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for i in 0..FILES {
        write(
            &src.join(format!("data/{i:02}.bin")),
            &random_bytes(SIZE),
            0o644,
            t,
        )?;
    }
    let url = format!("file://{}", dir.path().join("repo").display());
    let key = dir.path().join("key");
    ok(repo(&url, &key, &["init", "--new-key"], &[])?)?;

    // Killed (SIGKILL, as the node would) once about half is uploaded.
    let mut first = spawn_backup(&url, &key, &src, "h")?;
    let half = (FILES * SIZE / 2) as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while packs(&dir.path().join("repo"))?.values().sum::<u64>() < half {
        if std::time::Instant::now() > deadline || first.try_wait()?.is_some() {
            bail!("the first backup ended or stalled before half was uploaded");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill()?;
    first.wait()?;
    let before = packs(&dir.path().join("repo"))?;
    let uploaded: u64 = before.values().sum();

    // Run again: it finds what the first run uploaded and uploads only the rest.
    let out = ok(repo(
        &url,
        &key,
        &["backup", "--host", "h", src.to_str().context("utf-8")?],
        &[],
    )?)?;
    let snapshot = out.split_whitespace().nth(1).context("snapshot id")?.to_owned();
    let after = packs(&dir.path().join("repo"))?;
    let again: u64 = after
        .iter()
        .filter(|(p, _)| !before.contains_key(*p))
        .map(|(_, size)| size)
        .sum();
    eprintln!("the first run uploaded {uploaded} bytes before it was killed; the second {again}");
    // Incompressible data is stored at its size (plus well under 1% of seals and headers): what
    // both runs uploaded beyond that, the second uploaded again.
    let data = (FILES * SIZE) as u64;
    let repeated = (uploaded + again).saturating_sub(data + data / 100);
    assert!(
        repeated * 10 < uploaded,
        "the second run uploaded about {repeated} bytes again of the {uploaded} the first had uploaded"
    );
    assert!(
        again < data,
        "the second run uploaded {again} bytes: everything again"
    );

    let target = dir.path().join("restored");
    ok(repo(
        &url,
        &key,
        &["restore", &snapshot, target.to_str().context("utf-8")?],
        &[],
    )?)?;
    assert_eq!(picture(&src)?, picture(&target)?, "the restored tree differs");
    Ok(())
}
