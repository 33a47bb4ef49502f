//! A directory that file operations cannot leave. A tenant owns what is in its volume and can
//! change it while the node agent, as root, reads or writes there: every path below the directory
//! is resolved by the kernel with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, where
//! `openat2` is missing, one component at a time with `O_NOFOLLOW`), so neither `..`, an absolute
//! path, nor a symlink planted before or during the operation leads out of it. Paths given here
//! are relative to the directory; entries are made and changed through the descriptor of their
//! own directory, never by a path the kernel would resolve again.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat, Timestamps};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a name from a snapshot (or a directory listing) is not one to make an entry with.
pub fn invalid_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == "." || name == ".." {
        Some("a name that is . or ..")
    } else if name.contains('/') {
        Some("a name with /")
    } else if name.contains('\0') {
        Some("a name with a NUL byte")
    } else if name.len() > 255 {
        Some("a name longer than 255 bytes")
    } else {
        None
    }
}

/// A directory, open; everything below it is reached through it.
pub struct Beneath {
    root: OwnedFd,
    shown: PathBuf,
}

fn error(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// The components of `rel`, each a plain name.
fn names(rel: &Path) -> std::io::Result<Vec<&OsStr>> {
    rel.components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} leaves the directory", rel.display()),
            )),
        })
        .collect()
}

impl Beneath {
    /// Directory `dir`. Where it is is the caller's choice (an operator's path, a kubelet's
    /// volume directory resolved beneath the kubelet's root), so a symlink to it is followed;
    /// nothing below it is.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(error)?;
        Ok(Self {
            root,
            shown: dir.to_owned(),
        })
    }

    /// Writes everything written to the directory's filesystem to disk (`syncfs`).
    pub fn sync(&self) -> std::io::Result<()> {
        rustix::fs::syncfs(&self.root).map_err(error)
    }

    /// `rel` as a user reads it: the directory's path joined with it.
    pub fn show(&self, rel: &Path) -> PathBuf {
        self.shown.join(rel)
    }

    /// Opens `rel` (`.` or empty: the directory) with `flags` (and `mode`, when creating),
    /// following no symlink, not even as its last component.
    pub fn open_at(&self, rel: &Path, flags: OFlags, mode: Mode) -> std::io::Result<OwnedFd> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.root, rel, flags, mode, resolve) {
            // No openat2 (Linux before 5.6, or a seccomp profile without it): one component at
            // a time.
            Err(Errno::NOSYS) => self.walk(rel, flags, mode),
            other => other.map_err(error),
        }
    }

    fn walk(&self, rel: &Path, flags: OFlags, mode: Mode) -> std::io::Result<OwnedFd> {
        let names = names(rel)?;
        let Some((last, parents)) = names.split_last() else {
            return rustix::fs::openat(&self.root, ".", flags, mode).map_err(error);
        };
        let mut dir: Option<OwnedFd> = None;
        for name in parents {
            let at = dir.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
            let next = rustix::fs::openat(
                at,
                *name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(error)?;
            dir = Some(next);
        }
        let at = dir.as_ref().map_or(self.root.as_fd(), AsFd::as_fd);
        rustix::fs::openat(at, *last, flags, mode).map_err(error)
    }

    /// The directory holding `rel`, open, and `rel`'s last component.
    fn parent<'a>(&self, rel: &'a Path) -> std::io::Result<(OwnedFd, &'a OsStr)> {
        let names = names(rel)?;
        let Some(name) = names.last() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the directory itself has no parent here",
            ));
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = self.open_at(parent, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        Ok((dir, name))
    }

    /// `rel`'s attributes, not following it if it is a symlink.
    pub fn stat(&self, rel: &Path) -> std::io::Result<Stat> {
        if names(rel)?.is_empty() {
            return rustix::fs::fstat(&self.root).map_err(error);
        }
        let (dir, name) = self.parent(rel)?;
        rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(error)
    }

    /// Makes directory `rel` (owner only until its attributes are set); one that is there
    /// already is fine, anything else there is not (a symlink is not followed).
    pub fn make_dir(&self, rel: &Path) -> std::io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
            Err(Errno::EXIST) => {
                let there = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(error)?;
                if rustix::fs::FileType::from_raw_mode(there.st_mode) == rustix::fs::FileType::Directory {
                    Ok(())
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "something other than a directory is there (not followed)",
                    ))
                }
            }
            other => other.map_err(error),
        }
    }

    /// Creates file `rel` anew (whatever non-directory was there is removed first, so nothing is
    /// written through an existing inode), writable, owner only until its attributes are set.
    pub fn create_file(&self, rel: &Path) -> std::io::Result<std::fs::File> {
        let (dir, name) = self.parent(rel)?;
        remove(&dir, name)?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(error)?;
        Ok(std::fs::File::from(fd))
    }

    /// Opens file `rel` (not a symlink) to write into it.
    pub fn write_file(&self, rel: &Path) -> std::io::Result<std::fs::File> {
        Ok(std::fs::File::from(self.open_at(
            rel,
            OFlags::WRONLY,
            Mode::empty(),
        )?))
    }

    /// Opens file `rel` (not a symlink) to read it.
    pub fn read_file(&self, rel: &Path) -> std::io::Result<std::fs::File> {
        Ok(std::fs::File::from(self.open_at(
            rel,
            OFlags::RDONLY,
            Mode::empty(),
        )?))
    }

    /// Makes symlink `rel` pointing at `target` (replacing a non-directory there). The target is
    /// stored, never resolved here.
    pub fn symlink(&self, target: &str, rel: &Path) -> std::io::Result<()> {
        let (dir, name) = self.parent(rel)?;
        remove(&dir, name)?;
        rustix::fs::symlinkat(target, &dir, name).map_err(error)
    }

    /// Makes `rel` a hard link to `existing` (both below the directory; replaces a
    /// non-directory at `rel`). A symlink at `existing` is linked itself, never followed.
    pub fn hard_link(&self, existing: &Path, rel: &Path) -> std::io::Result<()> {
        let (from_dir, from) = self.parent(existing)?;
        let (to_dir, to) = self.parent(rel)?;
        remove(&to_dir, to)?;
        rustix::fs::linkat(&from_dir, from, &to_dir, to, AtFlags::empty()).map_err(error)
    }

    /// What symlink `rel` points at.
    pub fn read_link(&self, rel: &Path) -> std::io::Result<String> {
        let (dir, name) = self.parent(rel)?;
        let target = rustix::fs::readlinkat(&dir, name, Vec::new()).map_err(error)?;
        Ok(OsStr::from_bytes(target.as_bytes())
            .to_string_lossy()
            .into_owned())
    }

    /// The entries of directory `rel` (not `.` and `..`), sorted by name, with their attributes
    /// (symlinks not followed). An entry gone between listing and `stat` is left out.
    pub fn entries(&self, rel: &Path) -> std::io::Result<Vec<(String, Stat)>> {
        let dir = self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut listed = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir).map_err(error)? {
            let entry = entry.map_err(error)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            match rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => listed.push((OsStr::from_bytes(name).to_string_lossy().into_owned(), stat)),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(error(e)),
            }
        }
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listed)
    }

    /// Sets `rel`'s owner (`owner`: when running as root), mode (`mode`: not on symlinks) and
    /// modification time, on the open file, or on the symlink itself.
    pub fn set_attributes(
        &self,
        rel: &Path,
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
        mtime_ns: i64,
    ) -> std::io::Result<()> {
        let time = rustix::fs::Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        let ids = |(uid, gid): (u32, u32)| {
            // SAFETY-free: from_raw only wraps the number.
            (
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
        };
        let Some(mode) = mode else {
            // A symlink: changed through its directory, never followed.
            let (dir, name) = self.parent(rel)?;
            if let Some(owner) = owner {
                let (uid, gid) = ids(owner);
                rustix::fs::chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(error)?;
            }
            return rustix::fs::utimensat(&dir, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(error);
        };
        let fd = self.open_at(rel, OFlags::RDONLY, Mode::empty())?;
        if let Some(owner) = owner {
            let (uid, gid) = ids(owner);
            rustix::fs::fchown(&fd, uid, gid).map_err(error)?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(error)?;
        rustix::fs::futimens(&fd, &times).map_err(error)
    }
}

/// Removes `name` from `dir` unless it is a directory (or absent).
fn remove(dir: &OwnedFd, name: &OsStr) -> std::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a directory is there",
        )),
        Err(e) => Err(error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leaves_the_directory() {
        let top = tempfile::tempdir().expect("tempdir");
        let (inside, outside) = (top.path().join("inside"), top.path().join("outside"));
        std::fs::create_dir_all(&inside).expect("inside");
        std::fs::create_dir_all(&outside).expect("outside");
        std::fs::write(outside.join("secret"), b"other pod").expect("secret");
        std::os::unix::fs::symlink(&outside, inside.join("link")).expect("link");
        std::os::unix::fs::symlink(outside.join("secret"), inside.join("file-link")).expect("link");
        let dir = Beneath::open(&inside).expect("open");

        for rel in ["../outside/secret", "/etc/passwd", "link/secret", "file-link"] {
            assert!(dir.read_file(Path::new(rel)).is_err(), "{rel} was opened");
        }
        assert!(dir.create_file(Path::new("link/new")).is_err());
        assert!(
            dir.make_dir(Path::new("link")).is_err(),
            "a symlink is no directory"
        );
        assert!(dir.make_dir(Path::new("link/sub")).is_err());
        dir.create_file(Path::new("file-link"))
            .expect("replaces the link itself");
        assert_eq!(std::fs::read(outside.join("secret")).expect("read"), b"other pod");
        assert!(!outside.join("new").exists() && !outside.join("sub").exists());
        let through = Beneath::open(&inside.join("link")).expect("the caller's own choice");
        assert!(through.read_file(Path::new("secret")).is_ok());

        dir.make_dir(Path::new("sub")).expect("made");
        dir.make_dir(Path::new("sub")).expect("already there");
        dir.create_file(Path::new("sub/f")).expect("file");
        dir.hard_link(Path::new("sub/f"), Path::new("g"))
            .expect("hard link");
        dir.symlink("../../outside", Path::new("sub/out"))
            .expect("symlink");
        assert_eq!(
            dir.read_link(Path::new("sub/out")).expect("target"),
            "../../outside"
        );
        let names: Vec<_> = dir
            .entries(Path::new(""))
            .expect("listed")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["file-link", "g", "link", "sub"]);
        dir.set_attributes(Path::new("sub/out"), None, None, 1_000_000_000)
            .expect("on the symlink itself");
        assert!(
            std::fs::metadata(&outside)
                .expect("outside")
                .modified()
                .expect("mtime")
                != std::time::UNIX_EPOCH + std::time::Duration::from_secs(1),
            "the link's target was touched"
        );
    }

    #[test]
    fn names_from_a_snapshot_are_single_components() {
        for bad in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            assert!(invalid_name(bad).is_some(), "{bad:?}");
        }
        assert!(invalid_name(&"x".repeat(256)).is_some());
        assert_eq!(invalid_name("pg_wal"), None);
        assert_eq!(invalid_name("..hidden"), None);
    }
}
