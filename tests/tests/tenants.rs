//! Tenants' volumes and snapshots are hostile (issue 15, acceptance 1–3). A snapshot crafted with
//! names that leave their directory, duplicates, and a symlink followed by a directory of the same
//! name restores nothing outside its target, names each bad entry and restores the rest; a tenant
//! swapping a directory for a symlink to another pod's volume while a restore writes into it
//! changes nothing there; a tenant swapping a file for a symlink to a file outside its volume
//! while a backup reads it never gets that file into the repository.

use anyhow::{Context, Result};
use cairn_agent::volume::backup::Counters;
use cairn_agent::volume::blob::BlobId;
use cairn_agent::volume::pack::PackBuilder;
use cairn_agent::volume::restore::Options;
use cairn_agent::volume::{Error, Repository};
use cairn_proto::pb;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use testbed::cairn::workspace_bin;
use testbed::storage::LocalDir;
use testbed::tree::{picture, random_bytes};

fn file(name: &str, content: &[BlobId], size: u64) -> pb::Node {
    pb::Node {
        name: name.into(),
        kind: pb::NodeKind::File as i32,
        mode: 0o100_644,
        size,
        links: 1,
        content: content.iter().map(|id| id.0.to_vec()).collect(),
        ..Default::default()
    }
}

/// Writes a snapshot whose root directory holds `nodes` (and a subdirectory's tree `sub`, for
/// the nodes that point at it) straight into the repository, as a forger with its key would.
async fn forge(repo: &Repository, blobs: &[(BlobId, pb::BlobKind, Vec<u8>)]) -> Result<String> {
    let mut pack = PackBuilder::new()?;
    for (id, kind, plain) in blobs {
        pack.add(repo.master(), *id, *kind, plain)?;
    }
    let root = blobs.last().context("a root tree")?.0;
    let pack = pack.finish(repo.master())?;
    repo.put(&cairn_proto::format::VolumeKeys::pack(&pack.id), pack.bytes)
        .await?;
    repo.write_index(&pb::IndexFile {
        packs: vec![pb::IndexPack {
            pack: pack.id,
            blobs: pack.blobs,
        }],
    })
    .await?;
    Ok(repo
        .save_snapshot(&pb::Snapshot {
            time_unix_ms: 1,
            tree: root.0.to_vec(),
            host: "forger".into(),
            path: "/forged".into(),
            ..Default::default()
        })
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crafted_snapshot_restores_nothing_outside_its_target() -> Result<()> {
    let top = LocalDir::new()?;
    let (url, key, repo) = testbed::repository::create(top.path()).await?;
    let outside = top.path().join("outside");
    std::fs::create_dir_all(&outside)?;
    std::fs::write(outside.join("keep"), b"another pod's data")?;
    let absolute = top.path().join("absolute-target");

    let data = |text: &str| {
        let bytes = text.as_bytes().to_vec();
        (BlobId::of(repo.id_key(), &bytes), pb::BlobKind::Data, bytes)
    };
    let (hello, escaped, second) = (data("hello"), data("escaped!"), data("second"));
    // The directory `a` that comes after the symlink `a`: its file would land in `outside`.
    let sub = pb::Tree {
        nodes: vec![file("pwned", &[escaped.0], 8)],
    }
    .encode_to_vec();
    let sub = (BlobId::of(repo.id_key(), &sub), pb::BlobKind::Tree, sub);
    let link_a = pb::Node {
        name: "a".into(),
        kind: pb::NodeKind::Symlink as i32,
        target: outside.display().to_string(),
        mode: 0o120_777,
        ..Default::default()
    };
    let dir_a = pb::Node {
        name: "a".into(),
        kind: pb::NodeKind::Dir as i32,
        mode: 0o40_755,
        subtree: sub.0.0.to_vec(),
        ..Default::default()
    };
    let root = pb::Tree {
        nodes: vec![
            file("../escape", &[escaped.0], 8),
            file(absolute.to_str().context("utf-8")?, &[escaped.0], 8),
            file("b/c", &[escaped.0], 8),
            file("dup", &[hello.0], 5),
            file("dup", &[second.0], 6),
            link_a,
            dir_a,
            file("ok.txt", &[hello.0], 5),
        ],
    }
    .encode_to_vec();
    let root = (BlobId::of(repo.id_key(), &root), pb::BlobKind::Tree, root);
    let snapshot = forge(&repo, &[hello, escaped, second, sub, root]).await?;

    let target = top.path().join("target");
    let out = Command::new(workspace_bin("cairn-agent")?)
        .args(["repo", "restore", &snapshot])
        .arg(&target)
        .args(["--location-url", &url])
        .arg("--key-file")
        .arg(&key)
        .output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a crafted snapshot restored cleanly: {said}"
    );
    for bad in ["\"../escape\"", "\"b/c\"", "\"dup\"", "entry \"a\""] {
        assert!(said.contains(bad), "{bad} not named: {said}");
    }
    assert!(
        said.contains(&format!("{:?}", absolute.display().to_string())),
        "{said}"
    );
    assert!(said.contains("a second entry of that name"), "{said}");

    // Nothing outside the target: its parent holds what it held, the link's target too.
    let mut beside: Vec<_> = std::fs::read_dir(top.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    beside.sort();
    assert_eq!(beside, ["key", "outside", "repo", "target"]);
    assert!(!absolute.exists());
    let mut kept: Vec<_> = std::fs::read_dir(&outside)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    kept.sort();
    assert_eq!(kept, ["keep"]);
    assert_eq!(std::fs::read(outside.join("keep"))?, b"another pod's data");

    // The rest restored: the valid file, the first `dup`, the symlink (made, never followed).
    assert_eq!(std::fs::read(target.join("ok.txt"))?, b"hello");
    assert_eq!(std::fs::read(target.join("dup"))?, b"hello");
    assert_eq!(std::fs::read_link(target.join("a"))?, outside);
    Ok(())
}

/// A directory tree to back up: `sub/` with `files` files of a few KiB.
fn tree(dir: &Path, files: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("sub"))?;
    for i in 0..files {
        std::fs::write(dir.join(format!("sub/f{i:04}")), random_bytes(4096 + i))?;
    }
    Ok(())
}

/// What a tenant's pod can do to its own volume: move `path` away, put a symlink to `target` in
/// its place, then put it back. Whether it did.
fn swap_for_a_link(path: &Path, target: &Path) -> bool {
    let moved = path.with_extension("moved");
    if std::fs::rename(path, &moved).is_err() {
        return false;
    }
    let _ = std::os::unix::fs::symlink(target, path);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::rename(&moved, path);
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_swapping_a_directory_for_a_symlink_during_restore_changes_no_other_volume() -> Result<()> {
    let top = LocalDir::new()?;
    let (_, _, repo) = testbed::repository::create(top.path()).await?;
    let source = top.path().join("source");
    tree(&source, 2000)?;
    let snapshot = testbed::repository::back_up(&repo, &source).await?;
    // Another pod's volume, which the tenant points its `sub` at.
    let victim = top.path().join("victim");
    std::fs::create_dir_all(&victim)?;
    std::fs::write(victim.join("db"), b"the other tenant's database")?;
    let before = picture(&victim)?;

    for round in 0..5 {
        let target = top.path().join(format!("target-{round}"));
        std::fs::create_dir_all(&target)?;
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, sub, victim) = (stop.clone(), target.join("sub"), victim.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // The tenant's pod: its `sub` becomes a link to the other volume, and back.
                    swaps += u64::from(swap_for_a_link(&sub, &victim));
                }
                swaps
            })
        };
        let restored = cairn_agent::volume::restore::run(
            repo.clone(),
            &snapshot,
            &target,
            Arc::new(Counters::default()),
            Options::default(),
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().map_err(|_| anyhow::anyhow!("swapper panicked"))?;
        assert!(swaps > 0, "the race never ran");
        // Entries the tenant moved away fail, named; that is all the restore may lose.
        if let Err(e) = &restored {
            assert!(matches!(e, Error::Partial { .. }), "{e}");
        }
        assert_eq!(
            picture(&victim)?,
            before,
            "round {round}: the other volume changed"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_swapped_for_a_symlink_during_backup_never_brings_outside_data_in() -> Result<()> {
    let top = LocalDir::new()?;
    let (_, _, repo) = testbed::repository::create(top.path()).await?;
    let source = top.path().join("source");
    tree(&source, 300)?;
    // A file outside the volume, with a marker no file inside holds.
    let secret = top.path().join("secret");
    let marker = b"THE-OTHER-TENANTS-SECRET".repeat(200);
    std::fs::write(&secret, &marker)?;

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, sub, secret) = (stop.clone(), source.join("sub"), secret.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in (0..300).step_by(7) {
                    swaps += u64::from(swap_for_a_link(&sub.join(format!("f{i:04}")), &secret));
                }
            }
            swaps
        })
    };
    let mut snapshots = Vec::new();
    for _ in 0..6 {
        // A backup may leave out what changed under it; it must never read the secret.
        snapshots.push(testbed::repository::back_up(&repo, &source).await?);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().map_err(|_| anyhow::anyhow!("swapper panicked"))?;
    assert!(swaps > 0, "the race never ran");

    for (i, snapshot) in snapshots.iter().enumerate() {
        let target = top.path().join(format!("restored-{i}"));
        let _ = cairn_agent::volume::restore::run(
            repo.clone(),
            snapshot,
            &target,
            Arc::new(Counters::default()),
            Options::default(),
        )
        .await;
        for f in testbed::storage::files_under(&target)? {
            if std::fs::symlink_metadata(&f)?.is_file() {
                let bytes = std::fs::read(&f)?;
                assert!(
                    !bytes.windows(24).any(|w| w == &marker[..24]),
                    "snapshot {snapshot}: {} holds the outside file's content",
                    f.display()
                );
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn setuid_and_setgid_bits_come_back_only_when_asked() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let top = LocalDir::new()?;
    let (_, _, repo) = testbed::repository::create(top.path()).await?;
    let source = top.path().join("source");
    std::fs::create_dir_all(&source)?;
    for (name, mode) in [("suid", 0o4755), ("sgid", 0o2755), ("plain", 0o755)] {
        std::fs::write(source.join(name), b"#!/bin/sh\n")?;
        std::fs::set_permissions(source.join(name), std::fs::Permissions::from_mode(mode))?;
    }
    let snapshot = testbed::repository::back_up(&repo, &source).await?;
    let mode = |p: PathBuf| -> Result<u32> { Ok(std::fs::metadata(p)?.permissions().mode() & 0o7777) };
    for keep_setid in [false, true] {
        let target = top.path().join(format!("restored-{keep_setid}"));
        cairn_agent::volume::restore::run(
            repo.clone(),
            &snapshot,
            &target,
            Arc::new(Counters::default()),
            Options { keep_setid },
        )
        .await?;
        let (suid, sgid) = if keep_setid {
            (0o4755, 0o2755)
        } else {
            (0o755, 0o755)
        };
        assert_eq!(mode(target.join("suid"))?, suid, "keep_setid {keep_setid}");
        assert_eq!(mode(target.join("sgid"))?, sgid, "keep_setid {keep_setid}");
        assert_eq!(mode(target.join("plain"))?, 0o755);
    }
    Ok(())
}
