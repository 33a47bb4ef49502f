//! Node mode (`cairn-agent node`, a DaemonSet): moves the data of the claims mounted on one node.
//! The kubelet mounts a pod's volume at `<kubelet-root>/pods/<pod-uid>/volumes/<plugin>/<name>`
//! (CSI volumes one level further, in `mount/`), `<name>` being the PersistentVolume's name; a
//! task names the pod and the volume, and the node agent backs that directory up into the
//! workspace's repository or restores a snapshot into it. One task runs at a time: memory stays
//! that of one backup however many claims the node holds.
//!
//! The directory alone is not the volume: the kubelet makes it, then mounts the volume on it, and
//! unmounts the volume before removing it. A task reads or writes it only while a mount is rooted
//! there (as this process's `/proc/self/mountinfo` lists them; the DaemonSet mounts the pods
//! directory with `HostToContainer` propagation, so the kubelet's later mounts show): a restore
//! waits for the mount, a backup without one fails, saying so.
//!
//! A task's names are checked before anything is opened: the pod uid must be a UUID and the
//! volume a Kubernetes object name, so neither can climb out of the kubelet's pods directory; and
//! below it only real directories are followed, never a symbolic link.

use cairn_proto::model::{Report, Timestamp, VolumeProgress, VolumeResult, VolumeTask, VolumeTaskId};
use cairn_proto::seal::Key;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

use crate::volume::{self, Repository, backup::Counters};

/// How long a restore waits for the kubelet to mount the new volume.
pub const MOUNT_WAIT: Duration = Duration::from_secs(600);
/// How often a running task reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The directory of the CSI plugin's volumes: data sits in `mount/` under each.
const CSI_PLUGIN: &str = "kubernetes.io~csi";

/// This node's agent.
#[derive(Clone)]
pub struct Node {
    /// The node's name (as in the pods' `spec.nodeName`).
    pub name: String,
    /// The kubelet's root directory (`/var/lib/kubelet`).
    pub kubelet_root: PathBuf,
    slots: Arc<Semaphore>,
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(
        "no volume directory {} (is the pod on this node, and --kubelet-root right?)",
        pattern.display()
    )]
    NoDirectory { pattern: PathBuf },
    #[error("volume task refused: pod uid {0:?} is not a UUID")]
    PodUid(String),
    #[error(
        "volume task refused: volume {0:?} is not a Kubernetes object name (lowercase letters, \
         digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)"
    )]
    VolumeName(String),
    #[error(
        "nothing is mounted on {} (the kubelet mounts the volume there once the directory is made, \
         and unmounts it before removing it: is the pod running?)",
        path.display()
    )]
    Unmounted { path: PathBuf },
    #[error(
        "the volume was not mounted on {} within {}: if the pod is running, this node agent does \
         not see the kubelet's mounts (its DaemonSet must mount the pods directory with \
         mountPropagation: HostToContainer)",
        path.display(),
        humantime::format_duration(*waited)
    )]
    NeverMounted { path: PathBuf, waited: Duration },
    #[error("{} is not a directory (a symbolic link there is never followed)", path.display())]
    NotDirectory { path: PathBuf },
    #[error("inspecting {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key handed with the task")]
    Key(#[from] cairn_proto::seal::Error),
    #[error("{0} holds no volume data to restore (the location a backup wrote to, emptied since?)")]
    NothingToRestore(String),
    #[error(transparent)]
    Volume(#[from] volume::Error),
}

impl Node {
    /// The agent of node `name`, its kubelet at `kubelet_root`.
    pub fn new(name: String, kubelet_root: PathBuf) -> Self {
        Self {
            name,
            kubelet_root,
            slots: Arc::new(Semaphore::new(1)),
        }
    }

    /// Runs `task` (after those before it); its progress and result go into `events`.
    pub async fn run(self, task: VolumeTask, events: mpsc::Sender<Report>) {
        let (id, node, volume) = (task.id.clone(), self.name.clone(), task.volume.clone());
        // Progress from the start, waiting for a slot or not: the cluster agent's sign of life.
        let counters = Arc::new(Counters::default());
        let _ticker = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(report_progress(
            id.clone(),
            counters.clone(),
            events.clone(),
        )));
        let _slot = self.slots.clone().acquire_owned().await;
        // A task that dies (a panic) still answers, so its backup or restore does not wait for ever.
        let result = match tokio::spawn(async move { self.execute(&task, &counters).await }).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(task = %id, error = %e, "volume task died");
                VolumeResult {
                    node,
                    volume,
                    error: Some(format!(
                        "the node agent's task died ({e}): its data was not all moved"
                    )),
                    ..VolumeResult::default()
                }
            }
        };
        let _ = events.send(Report::VolumeDone(id, result)).await;
    }

    #[tracing::instrument(name = "volume", skip_all, fields(task = %task.id, pod = %task.pod_uid, volume = %task.volume))]
    async fn execute(&self, task: &VolumeTask, counters: &Arc<Counters>) -> VolumeResult {
        let mut result = VolumeResult {
            node: self.name.clone(),
            volume: task.volume.clone(),
            ..VolumeResult::default()
        };
        let outcome = self.move_data(task, counters, &mut result).await;
        result.finished = result.started.map(|_| Timestamp::now());
        if let Err(e) = outcome {
            let error = cairn_proto::error_chain(&e);
            tracing::warn!(%error, "volume task failed");
            result.error = Some(error);
        } else {
            tracing::info!(snapshot = %result.snapshot, files = result.files, bytes = result.bytes, "volume task done");
        }
        result
    }

    async fn move_data(
        &self,
        task: &VolumeTask,
        counters: &Arc<Counters>,
        result: &mut VolumeResult,
    ) -> Result<(), Error> {
        // Before anything is opened, here or in the location.
        let volume = PodVolume::of(task)?;
        let (dir, repo) = match &task.snapshot {
            None => {
                let dir = self.present(&volume)?;
                result.started = Some(Timestamp::now());
                (dir, open_repository(task, true).await?)
            }
            Some(_) => {
                // The repository opens while the kubelet mounts the volume: a wrong key or
                // location fails at once, and the restore starts as soon as the mount is there.
                let mut mounted_at = None;
                let mounted = async {
                    let dir = self.mounted(&volume).await?;
                    mounted_at = Some(Timestamp::now());
                    Ok::<_, Error>(dir)
                };
                let joined = tokio::try_join!(mounted, open_repository(task, false));
                // Set whether the repository opened or not, as for a backup: the mount appeared.
                result.started = mounted_at;
                let (dir, repo) = joined?;
                tracing::info!(dir = %dir.display(), "volume mounted, repository open: restoring into it");
                (dir, repo)
            }
        };
        match &task.snapshot {
            None => {
                let origin = volume::backup::Origin {
                    host: task.cluster.to_string(),
                    path: Some(task.source.clone()),
                    tag: task.tag.clone(),
                };
                let s = volume::backup::run(repo, &dir, origin, counters.clone()).await?;
                result.snapshot = s.snapshot;
                result.files = s.files;
                result.bytes = s.bytes;
                result.bytes_read = s.bytes_read;
                result.bytes_added = s.bytes_added;
            }
            Some(snapshot) => {
                let options = volume::restore::Options {
                    keep_setid: task.keep_setid,
                };
                let s = volume::restore::run(repo, snapshot, &dir, counters.clone(), options).await?;
                result.snapshot = snapshot.clone();
                result.files = s.files;
                result.bytes = s.bytes;
            }
        }
        Ok(())
    }

    /// The directory where the kubelet mounts `volume` (which may not be there yet): in the
    /// first of the pod's plugin directories that holds it, `mount/` below that for CSI.
    fn volume_dir(&self, volume: &PodVolume) -> Result<PathBuf, Error> {
        let pod = self.kubelet_root.join("pods").join(&volume.pod_uid);
        let volumes = pod.join("volumes");
        let no_directory = || Error::NoDirectory {
            pattern: volumes.join("*").join(&volume.name),
        };
        if !(is_dir(&pod)? && is_dir(&volumes)?) {
            return Err(no_directory());
        }
        let plugins = std::fs::read_dir(&volumes).into_iter().flatten().flatten();
        for plugin in plugins {
            // The entry's own type: a link among the plugins is skipped, not followed.
            if !plugin.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = plugin.path().join(&volume.name);
            if is_dir(&dir)? {
                let is_csi = plugin.file_name() == CSI_PLUGIN;
                return Ok(if is_csi { dir.join("mount") } else { dir });
            }
        }
        Err(no_directory())
    }

    /// [`Node::volume_dir`], if it is there and the volume is mounted on it. The kubelet makes the
    /// directory, then mounts the volume on it (a CSI driver likewise its `mount/`): data written
    /// in between would be hidden under the mount, the pod seeing an empty volume; and a pod going
    /// away has its volume unmounted before the directory is removed, when a backup would read an
    /// empty directory and call it the claim's data.
    fn present(&self, volume: &PodVolume) -> Result<PathBuf, Error> {
        let dir = self.volume_dir(volume)?;
        if !is_dir(&dir)? {
            return Err(Error::NoDirectory { pattern: dir });
        }
        if !is_mount_point(&dir)? {
            return Err(Error::Unmounted { path: dir });
        }
        Ok(dir)
    }

    /// [`Node::present`], once the kubelet has mounted it (waiting up to [`MOUNT_WAIT`]).
    async fn mounted(&self, volume: &PodVolume) -> Result<PathBuf, Error> {
        let deadline = tokio::time::Instant::now() + MOUNT_WAIT;
        let mut said = false;
        loop {
            match self.present(volume) {
                Err(Error::NoDirectory { pattern: path } | Error::Unmounted { path }) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::NeverMounted {
                            path,
                            waited: MOUNT_WAIT,
                        });
                    }
                    if !std::mem::replace(&mut said, true) {
                        tracing::info!(dir = %path.display(), "waiting for the kubelet to mount the volume");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                found => return found,
            }
        }
    }
}

/// The repository in `task`'s location, opened with its key; made first if there is none yet and
/// `make` (a backup's first; a restore only reads one that is there).
async fn open_repository(task: &VolumeTask, make: bool) -> Result<Arc<Repository>, Error> {
    let store = cairn_proto::format::open_location(&task.location).map_err(volume::Error::from)?;
    const ORIGIN: &str = "the workspace's repository key";
    let kek = Key::from_raw(&task.key.0, ORIGIN)?;
    let label = format!("location {}", task.location.name);
    let repo = if make {
        Repository::open_or_init(store, &label, &kek, ORIGIN).await?
    } else {
        match Repository::open(store, &label, &kek, ORIGIN).await {
            Err(volume::Error::NotInitialised(label)) => return Err(Error::NothingToRestore(label)),
            opened => opened?,
        }
    };
    Ok(Arc::new(repo))
}

/// A task's pod and volume, checked: names that stay one directory level each.
#[derive(Debug)]
struct PodVolume {
    /// The pod's uid: a UUID.
    pod_uid: String,
    /// The PersistentVolume's name: a Kubernetes object name.
    name: String,
}

impl PodVolume {
    /// `task`'s pod and volume, or the first of them that could name another directory.
    fn of(task: &VolumeTask) -> Result<Self, Error> {
        if !is_uuid(&task.pod_uid) {
            return Err(Error::PodUid(task.pod_uid.clone()));
        }
        if !cairn_proto::model::is_object_name(&task.volume) {
            return Err(Error::VolumeName(task.volume.clone()));
        }
        Ok(Self {
            pod_uid: task.pod_uid.clone(),
            name: task.volume.clone(),
        })
    }
}

/// Whether `uid` is a UUID as the API server writes a pod's: 8-4-4-4-12 lowercase hex digits.
fn is_uuid(uid: &str) -> bool {
    uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether `path` is a directory: `false` if nothing is there (yet); a symbolic link or a file
/// there is refused, never followed.
fn is_dir(path: &Path) -> Result<bool, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(Error::NotDirectory {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Inspect {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Whether a mount (of this process's mount namespace) is rooted at directory `dir`: a bind
/// mount of a directory of the same filesystem is one too, which comparing devices would miss.
/// Works on every kernel (`statx`'s mount-root attribute needs Linux 5.8); mount points are
/// compared as bytes, so no other mount's odd name can fail the check.
fn is_mount_point(dir: &Path) -> Result<bool, Error> {
    const MOUNTINFO: &str = "/proc/self/mountinfo";
    let inspect = |path: &Path, source| Error::Inspect {
        path: path.to_owned(),
        source,
    };
    // Mount points are listed as the kernel resolves them: no link, no `..`.
    let dir = match std::fs::canonicalize(dir) {
        Ok(dir) => dir,
        // Gone meanwhile (a CSI driver retrying its mount): not mounted, yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(inspect(dir, e)),
    };
    let listed = mountinfo_escaped(&dir);
    let mounts = std::fs::read(MOUNTINFO).map_err(|e| inspect(Path::new(MOUNTINFO), e))?;
    // `id parent major:minor root mount-point options…`: the fifth field.
    Ok(mounts
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .any(|point| point == listed.as_slice()))
}

/// `path` as `/proc/self/mountinfo` lists it: space, tab, newline and backslash as octal escapes.
fn mountinfo_escaped(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

async fn report_progress(id: VolumeTaskId, counters: Arc<Counters>, events: mpsc::Sender<Report>) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tick.tick().await;
        let progress = VolumeProgress {
            id: id.clone(),
            files: counters.files.load(Ordering::Relaxed),
            bytes: counters.bytes_read.load(Ordering::Relaxed),
        };
        let _ = events.try_send(Report::VolumeProgress(progress));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::model::{BackupName, Location, RepositoryKey};

    const UID: &str = "0b3c5d7e-1f2a-4b6c-8d9e-a1b2c3d4e5f6";

    /// A backup task (a restore's if `snapshot`) of `volume` of pod `pod_uid`, its repository in
    /// `repo` (a local directory).
    fn task(pod_uid: &str, volume: &str, repo: &Path, snapshot: Option<&str>) -> VolumeTask {
        let backup: BackupName = "nightly".parse().expect("name");
        VolumeTask {
            id: VolumeTaskId::new(backup, "shop", "data"),
            cluster: "east".parse().expect("name"),
            node: "node-a".into(),
            location: Location {
                name: "default".parse().expect("name"),
                url: format!("file://{}", repo.display()),
                options: Default::default(),
            },
            key: RepositoryKey(vec![7; 32]),
            pod_uid: pod_uid.into(),
            volume: volume.into(),
            source: "east/shop/data".into(),
            tag: "nightly".into(),
            snapshot: snapshot.map(str::to_owned),
            keep_setid: false,
        }
    }

    /// Every path under `root`, links as links.
    fn listing(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
                if entry.file_type().expect("type").is_dir() {
                    pending.push(entry.path());
                }
                out.push(entry.path());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_pod_uid_is_a_lowercase_uuid_and_nothing_else() {
        assert!(is_uuid(UID));
        for bad in [
            "",
            "../..",
            "..",
            UID.to_uppercase().as_str(),
            UID.replace('-', "").as_str(),
            "0b3c5d7e-1f2a-4b6c-8d9e-a1b2c3d4e5f",
            "0b3c5d7e-1f2a-4b6c-8d9e-a1b2c3d4e5f6/..",
            "0b3c5d7e/1f2a-4b6c-8d9e-a1b2c3d4e5f6",
            "0b3c5d7e-1f2a-4b6c-8d9e-a1b2c3d4e5g6",
        ] {
            assert!(!is_uuid(bad), "{bad:?} accepted");
        }
    }

    /// Hostile names are refused, naming the field and the value, before the repository or the
    /// kubelet's directory is opened: nothing is made in either.
    #[tokio::test]
    async fn tasks_naming_other_directories_are_refused_before_anything_is_touched() {
        let top = tempfile::tempdir().expect("tempdir");
        let (root, repo) = (top.path().join("kubelet"), top.path().join("repo"));
        let data = root
            .join("pods")
            .join(UID)
            .join("volumes/kubernetes.io~csi/pv-1/mount");
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("file"), b"tenant data").expect("write");
        std::fs::create_dir_all(&repo).expect("mkdir");
        let before = listing(top.path());
        let node = Node::new("node-a".into(), root);
        let cases = [
            (
                "../..",
                "pv-1",
                "volume task refused: pod uid \"../..\" is not a UUID",
            ),
            (
                UID,
                "../../x",
                "volume task refused: volume \"../../x\" is not a Kubernetes object name",
            ),
            (
                UID,
                "/etc",
                "volume task refused: volume \"/etc\" is not a Kubernetes object name",
            ),
            (
                UID,
                "..",
                "volume task refused: volume \"..\" is not a Kubernetes object name",
            ),
            (
                UID,
                "",
                "volume task refused: volume \"\" is not a Kubernetes object name",
            ),
            ("", "pv-1", "volume task refused: pod uid \"\" is not a UUID"),
        ];
        for snapshot in [None, Some("0123456789abcdef")] {
            for (uid, volume, refusal) in cases {
                let counters = Arc::new(Counters::default());
                let result = node.execute(&task(uid, volume, &repo, snapshot), &counters).await;
                let error = result.error.unwrap_or_default();
                assert!(error.starts_with(refusal), "{uid:?} {volume:?}: {error}");
            }
        }
        assert_eq!(listing(top.path()), before, "a refused task touched a file");
    }

    #[test]
    fn only_real_directories_are_followed_below_the_pods_directory() {
        let top = tempfile::tempdir().expect("tempdir");
        let root = top.path().join("kubelet");
        let node = Node::new("node-a".into(), root.clone());
        let volumes = root.join("pods").join(UID).join("volumes");
        let volume = |name: &str| PodVolume {
            pod_uid: UID.into(),
            name: name.into(),
        };
        // Another pod's volumes, which a link must not lead to.
        let other = root.join("pods/9f8e7d6c-5b4a-4321-8fed-cba987654321/volumes/kubernetes.io~csi");
        std::fs::create_dir_all(other.join("pv-other/mount")).expect("mkdir");
        std::fs::create_dir_all(&volumes).expect("mkdir");

        // A plugin entry that is a link: skipped.
        std::os::unix::fs::symlink(&other, volumes.join("kubernetes.io~csi")).expect("symlink");
        let err = node
            .present(&volume("pv-other"))
            .expect_err("followed a linked plugin directory");
        assert!(matches!(err, Error::NoDirectory { .. }), "{err}");
        std::fs::remove_file(volumes.join("kubernetes.io~csi")).expect("rm");

        // A volume directory that is a link: refused, saying so.
        let csi = volumes.join("kubernetes.io~csi");
        std::fs::create_dir_all(&csi).expect("mkdir");
        std::os::unix::fs::symlink(other.join("pv-other"), csi.join("pv-1")).expect("symlink");
        let err = node
            .present(&volume("pv-1"))
            .expect_err("followed a linked volume directory");
        assert!(
            err.to_string()
                .ends_with("pv-1 is not a directory (a symbolic link there is never followed)"),
            "{err}"
        );
        std::fs::remove_file(csi.join("pv-1")).expect("rm");

        // A CSI volume whose `mount` is a link: refused.
        std::fs::create_dir_all(csi.join("pv-1")).expect("mkdir");
        std::os::unix::fs::symlink(other.join("pv-other/mount"), csi.join("pv-1/mount")).expect("symlink");
        let err = node
            .present(&volume("pv-1"))
            .expect_err("followed a linked mount");
        assert!(matches!(err, Error::NotDirectory { .. }), "{err}");
        std::fs::remove_file(csi.join("pv-1/mount")).expect("rm");

        // No directory yet, then the directory without the mount (the kubelet has made it and
        // not yet mounted the volume on it): neither is written to or read. The kubelet's layout.
        let err = node.present(&volume("pv-1")).expect_err("no directory yet");
        assert!(matches!(err, Error::NoDirectory { .. }), "{err}");
        std::fs::create_dir(csi.join("pv-1/mount")).expect("mkdir");
        assert_eq!(
            node.volume_dir(&volume("pv-1")).expect("found"),
            csi.join("pv-1/mount")
        );
        let err = node.present(&volume("pv-1")).expect_err("nothing mounted yet");
        assert!(
            err.to_string().starts_with(&format!(
                "nothing is mounted on {}",
                csi.join("pv-1/mount").display()
            )),
            "{err}"
        );
        let local = volumes.join("kubernetes.io~local-volume/pv-2");
        std::fs::create_dir_all(&local).expect("mkdir");
        assert_eq!(node.volume_dir(&volume("pv-2")).expect("found"), local);
        let err = node.present(&volume("pv-2")).expect_err("nothing mounted yet");
        assert!(matches!(err, Error::Unmounted { .. }), "{err}");
    }

    /// Mount points are found as mountinfo lists them, escapes included; a plain directory is
    /// none. (Mounted volumes themselves: tests/tests/claims.rs, which mounts as the kubelet does.)
    #[test]
    fn a_mount_point_is_told_from_a_plain_directory() {
        assert!(is_mount_point(Path::new("/proc")).expect("inspected"));
        assert!(is_mount_point(Path::new("/proc/../proc/")).expect("inspected"));
        let plain = tempfile::tempdir().expect("tempdir");
        assert!(!is_mount_point(plain.path()).expect("inspected"));
        assert_eq!(
            mountinfo_escaped(Path::new("/var/lib/kube let/a\\b\tc\nd")),
            b"/var/lib/kube\\040let/a\\134b\\011c\\012d"
        );
        assert!(!is_mount_point(&plain.path().join("gone")).expect("nothing there, so not yet"));
    }
}
