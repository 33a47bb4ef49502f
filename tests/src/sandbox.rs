//! A sandbox: one directory that owns a group of server processes, their data, logs and pid files.
//!
//! Layout, under `$TMPDIR/cairn-testbed/<kind>-<random>/`:
//! - `owner`: `<pid> <start time>` of the process that made the sandbox;
//! - `<name>.pid`: `<pid> <start time>` of each server it started; `<name>.log`: its output.
//!
//! A sandbox kills its servers (each in its own process group) and removes its directory on drop.
//! Its servers also get `SIGKILL` from the kernel when the owning thread dies, and any sandbox whose
//! owner is gone — a test process killed mid-run — is reaped by [`reap_stale`], which every new
//! sandbox calls first. Start times guard against pids the system has since reused.

use anyhow::{Context, Result, bail};
use std::fs;
use std::future::Future;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::wait_until;

/// Lines of a server's log quoted in an error when it fails to start.
const LOG_TAIL_LINES: usize = 30;

/// The folder that holds every sandbox of this machine's test runs.
fn root() -> PathBuf {
    std::env::temp_dir().join("cairn-testbed")
}

/// A process's identity: its pid and the kernel's start time for it (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    pid: u32,
    start: u64,
}

impl Identity {
    fn of(pid: u32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; the start time is field 22 of stat(5).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return None; // a zombie has ended already
        }
        Some(Self {
            pid,
            start: fields.get(19)?.parse().ok()?,
        })
    }

    fn is_alive(self) -> bool {
        Self::of(self.pid) == Some(self)
    }

    fn parse(text: &str) -> Option<Self> {
        let mut it = text.split_whitespace();
        Some(Self {
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        })
    }

    fn write(self, path: &Path) -> Result<()> {
        fs::write(path, format!("{} {}\n", self.pid, self.start))
            .with_context(|| format!("writing pid file {}", path.display()))
    }
}

struct Server {
    name: String,
    child: Child,
}

/// A directory owning a group of server processes; see the module docs.
pub struct Sandbox {
    dir: PathBuf,
    servers: Mutex<Vec<Server>>,
}

impl Sandbox {
    /// Reaps stale sandboxes, then makes a new one whose directory name starts with `kind`.
    pub fn new(kind: &str) -> Result<Self> {
        reap_stale()?;
        fs::create_dir_all(root())?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{kind}-"))
            .tempdir_in(root())
            .context("creating sandbox directory")?
            .keep();
        let owner = Identity::of(std::process::id()).context("reading own /proc entry")?;
        owner.write(&dir.join("owner"))?;
        Ok(Self {
            dir,
            servers: Mutex::new(Vec::new()),
        })
    }

    /// The sandbox directory; servers keep their data below it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts `cmd` as server `name`, output appended to `<name>.log`, in its own process group.
    ///
    /// Call from a thread that lives as long as the server (a test's or runtime worker's thread,
    /// never `spawn_blocking`): the kernel kills the server when the spawning thread ends.
    pub fn spawn(&self, name: &str, mut cmd: Command) -> Result<u32> {
        // Appended: a server started again keeps the earlier run's log.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let pid = child.id();
        if let Some(identity) = Identity::of(pid) {
            identity.write(&self.dir.join(format!("{name}.pid")))?;
        }
        self.lock().push(Server {
            name: name.to_owned(),
            child,
        });
        Ok(pid)
    }

    /// Stops server `name` now (SIGKILL to its group), as a crash would; it can be started again.
    pub fn kill(&self, name: &str) {
        let mut servers = self.lock();
        if let Some(i) = servers.iter().position(|s| s.name == name) {
            let mut server = servers.remove(i);
            kill_group(server.child.id());
            let _ = server.child.wait();
        }
    }

    /// Freezes server `name` (SIGSTOP to its group) until the returned guard is dropped
    /// (SIGCONT): a server that is up and does nothing, as one starved of CPU on a busy machine.
    pub fn freeze(&self, name: &str) -> Result<Frozen> {
        let pid = self
            .lock()
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.child.id())
            .with_context(|| format!("no server {name} to freeze"))?;
        let group = Pid::from_raw(i32::try_from(pid)?);
        killpg(group, Signal::SIGSTOP).with_context(|| format!("freezing {name}"))?;
        Ok(Frozen(group))
    }

    /// Stops server `name` as an operator would: SIGTERM to its group, and SIGKILL if it has not
    /// exited within `grace` (servers that wait for idle keep-alive connections take minutes).
    /// It can be started again.
    pub fn stop(&self, name: &str, grace: Duration) {
        let _ = self.terminate(name, grace);
    }

    /// SIGTERM to server `name`'s group; its exit status and how long it took to exit, or an
    /// error (after SIGKILL) if it was still running after `grace`. It can be started again.
    pub fn terminate(&self, name: &str, grace: Duration) -> Result<(std::process::ExitStatus, Duration)> {
        let mut servers = self.lock();
        let Some(i) = servers.iter().position(|s| s.name == name) else {
            bail!("no server {name} in sandbox {}", self.dir.display());
        };
        let mut server = servers.remove(i);
        if let Ok(pid) = i32::try_from(server.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < grace {
            if let Some(status) = server.child.try_wait()? {
                return Ok((status, start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(server.child.id());
        let _ = server.child.wait();
        bail!("{name} still running {grace:?} after SIGTERM: killed")
    }

    /// Fails if server `name` has exited.
    pub fn ensure_running(&self, name: &str) -> Result<()> {
        let mut servers = self.lock();
        let Some(server) = servers.iter_mut().find(|s| s.name == name) else {
            bail!("no server {name} in sandbox {}", self.dir.display());
        };
        if let Some(status) = server.child.try_wait()? {
            bail!("{name} exited ({status})");
        }
        Ok(())
    }

    /// Polls `probe` until it yields a value, as [`wait_until`] does, while server `name` runs.
    /// Fails at once if the server exits, and after `timeout` otherwise; either error quotes the
    /// server's log.
    pub async fn wait_ready<T, F, Fut>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        wait_until(what, timeout, || {
            let ready = probe();
            async move {
                self.ensure_running(name)?;
                ready.await
            }
        })
        .await
        .map_err(|e| {
            e.context(format!(
                "{name} log ({}):\n{}",
                self.dir.display(),
                self.log_tail(name)
            ))
        })
    }

    /// Everything server `name` has logged (this run and earlier ones of the same name).
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last lines of server `name`'s log, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        let text = self.log(name);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Pids of the servers started here, by name, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.lock()
            .iter()
            .map(|s| (s.name.clone(), s.child.id()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Server>> {
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let mut servers = self.lock();
        // Cairn's own logs end on the test's stderr, which the test runner shows when it fails.
        let mut names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        for name in names.into_iter().filter(|n| n.starts_with("cairn")) {
            eprintln!("--- last lines of {name}'s log ---\n{}", self.log_tail(name));
        }
        // Last started first: the controller-manager before its API server before etcd.
        for server in servers.iter_mut().rev() {
            kill_group(server.child.id());
            let _ = server.child.wait();
        }
        servers.clear();
        drop(servers);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A server frozen by [`Sandbox::freeze`]; it runs again when this is dropped.
#[must_use = "the server runs again when this is dropped"]
pub struct Frozen(Pid);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGCONT);
    }
}

/// Stops the servers of every sandbox whose owner has died and removes those sandboxes.
///
/// Returns the directories reaped. Servers are matched by pid *and* start time, so a pid the
/// system has since given to another process is left alone.
pub fn reap_stale() -> Result<Vec<PathBuf>> {
    let mut reaped = Vec::new();
    let Ok(entries) = fs::read_dir(root()) else {
        return Ok(reaped);
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = fs::read_to_string(dir.join("owner"))
            .ok()
            .and_then(|t| Identity::parse(&t));
        if owner.is_some_and(Identity::is_alive) {
            continue;
        }
        if owner.is_none() && is_recent(&dir) {
            continue; // a sandbox being made right now, owner file not yet written
        }
        for file in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "pid") {
                let server = fs::read_to_string(&path).ok().and_then(|t| Identity::parse(&t));
                if let Some(server) = server.filter(|s| s.is_alive()) {
                    tracing::info!(pid = server.pid, file = %path.display(), "reaping stale test server");
                    kill_group(server.pid);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        reaped.push(dir);
    }
    Ok(reaped)
}

/// Whether process `pid` exists and has not ended (a zombie counts as ended).
pub fn is_running(pid: u32) -> bool {
    Identity::of(pid).is_some()
}

fn is_recent(dir: &Path) -> bool {
    fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() < 10)
}

/// SIGKILL to the process group led by `pid` (every server leads its own group).
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it ends, so servers never
/// outlive a test process that was killed outright.
#[allow(unsafe_code)] // pre_exec is unsafe; the hook only calls prctl, which is async-signal-safe
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; prctl(PR_SET_PDEATHSIG) allocates nothing and
    // takes no locks.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sandbox left by a dead owner, with a live server that (as after a `kill -9` of a test
    /// whose servers ignored the death signal) still runs: the next reap kills it and removes
    /// the directory.
    #[test]
    fn reaps_servers_of_a_dead_owner() {
        // A "server" started without any link to us, as an orphan would be.
        let mut sleeper = Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .expect("sleep");
        let server = Identity::of(sleeper.id()).expect("sleep is running");
        // An owner that has exited: a finished child process.
        let mut done = Command::new("true").spawn().expect("true");
        let done_pid = done.id();
        done.wait().expect("true exits");

        fs::create_dir_all(root()).expect("root");
        let dir = tempfile::Builder::new()
            .prefix("unit-")
            .tempdir_in(root())
            .expect("dir")
            .keep();
        fs::write(dir.join("owner"), format!("{done_pid} 1\n")).expect("owner");
        server.write(&dir.join("sleep.pid")).expect("pid file");

        // Another test process may reap it first; either way it must be gone.
        reap_stale().expect("reap");
        assert!(!dir.exists(), "sandbox directory removed");
        let status = sleeper.wait().expect("wait");
        assert_eq!(status.to_string(), "signal: 9 (SIGKILL)");
    }

    #[test]
    fn leaves_sandboxes_of_live_owners_and_reused_pids_alone() {
        let sandbox = Sandbox::new("unit-live").expect("sandbox");
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let pid = sandbox.spawn("sleep", cmd).expect("spawn");
        reap_stale().expect("reap");
        assert!(sandbox.dir().exists(), "live owner's sandbox kept");
        sandbox.ensure_running("sleep").expect("server still running");

        // A pid file whose start time does not match the live process is not ours to kill.
        let stale = Identity { pid, start: 1 };
        assert!(!stale.is_alive());
        drop(sandbox);
        assert!(Identity::of(pid).is_none(), "server stopped on drop");
    }
}
