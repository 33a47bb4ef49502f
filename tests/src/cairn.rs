//! Cairn's own processes on the test bed: a hub ([`HubProcess`]) with its data in a sandbox, agents
//! ([`AgentProcess`]) for control planes, and the `cairn` CLI ([`HubProcess::cli`]) run as a user
//! runs it. The binaries are the workspace's, built next to the test executables.

use anyhow::{Context, Result, bail};
use cairn_cli::client::Client;
use cairn_proto::model::Timestamp;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::{ControlPlane, Sandbox, free_port};

/// How long a hub or agent may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A workspace binary (`cairn-hub`, `cairn-agent`, `cairn`) built in the same target directory as
/// the running test (`cargo build --workspace --bins` builds them; `tests/run.sh` does).
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> → target/debug/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// A hub served in-process (benchmarks) over `inventory`, its data (master key, CA, built-in
/// location) under `data_dir`, on a free loopback port, volume prunes given at least the default
/// day: the hub, its `https://` URL, and how its administrator dials it (its CA trusted, its
/// token carried).
pub async fn in_process_hub(
    data_dir: &Path,
    inventory: cairn_hub::inventory::Inventory,
) -> Result<(cairn_hub::operations::Hub, String, cairn_proto::dial::Hub)> {
    let key = cairn_proto::seal::Key::create_file(&data_dir.join("secret.key"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let source = cairn_hub::pki::Source::Own {
        dir: data_dir.join("pki"),
        names: vec!["127.0.0.1".into()],
    };
    let tls = cairn_hub::pki::Tls::load(&source, &key)?;
    let enrolment = cairn_hub::operations::Enrolment::new(
        cairn_hub::pki::Authority::agents(&key)?,
        &tls.ca_pem,
        Duration::from_secs(24 * 3600),
    )?;
    let backups = data_dir.join("backups");
    let hub = cairn_hub::operations::Hub::start(
        inventory,
        key,
        backups.to_str().context("UTF-8 path")?,
        cairn_hub::clock::Clock::System,
        enrolment,
        cairn_hub::operations::Limits {
            prune_grace: Duration::from_secs(24 * 3600),
            instruction_deadline: Duration::from_secs(30),
            admissions_per_second: 1000,
            rpo_grace: Duration::from_secs(3600),
        },
    )
    .await?;
    let admin = hub
        .bootstrap_admin()
        .await?
        .context("a new hub has no token yet")?;
    tokio::spawn(cairn_hub::api::serve(
        hub.clone(),
        listener,
        tls,
        std::future::pending(),
    ));
    let dial = cairn_proto::dial::Hub::with_ca_file(&url, Some(&data_dir.join("pki").join("ca.crt")))?;
    Ok((hub, url, dial.with_token(admin.1)))
}

/// A join token for `cluster` from the hub at `url` that `client` talks to.
pub async fn join_token(client: &mut Client, url: &str, cluster: &str) -> Result<String> {
    let grant = client
        .create_join_token(&cluster.parse()?, None, Duration::from_secs(3600))
        .await?;
    Ok(cairn_proto::join::JoinToken {
        hub: url.to_owned(),
        ca_sha256: grant.ca_sha256,
        secret: grant.secret,
        expires: grant.expires,
    }
    .encode())
}

/// A running `cairn-hub` on a free port, its data directory in its sandbox.
pub struct HubProcess {
    url: String,
    /// Its metrics' base URL.
    metrics: String,
    env: Vec<(String, String)>,
    sandbox: Sandbox,
}

impl HubProcess {
    /// Starts a hub with embedded defaults but for its port and data directory.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts a hub as [`HubProcess::start`] does, with environment variables `env` on top
    /// (`CAIRN_*` configuration; `RUST_LOG`, which its agents get too).
    pub async fn start_with(env: &[(&str, &str)]) -> Result<Self> {
        crate::init();
        let sandbox = Sandbox::new("hub")?;
        let url = format!("https://127.0.0.1:{}", free_port()?);
        let hub = Self {
            url,
            metrics: format!("http://127.0.0.1:{}", free_port()?),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            sandbox,
        };
        hub.launch().await?;
        Ok(hub)
    }

    /// The log level of the hub and its agents.
    fn log_level(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == "RUST_LOG")
            .map_or("info", |(_, v)| v.as_str())
    }

    async fn launch(&self) -> Result<()> {
        let mut cmd = Command::new(workspace_bin("cairn-hub")?);
        cmd.env("CAIRN_LISTEN", self.url.trim_start_matches("https://"))
            .env("CAIRN_METRICS_LISTEN", self.metrics.trim_start_matches("http://"))
            .env("CAIRN_DATA_DIR", self.data_dir())
            .env("RUST_LOG", self.log_level())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        self.sandbox.spawn("cairn-hub", cmd)?;
        self.sandbox
            .wait_ready("cairn-hub", "the hub's API", START_TIMEOUT, || async {
                // Its CA is written on first start: until then there is nothing to trust.
                let Ok(hub) = self.dial() else { return Ok(None) };
                Ok(Client::connect(&hub).await.ok().map(|_| ()))
            })
            .await
    }

    /// Kills the hub outright (SIGKILL, as a crash) and starts it again on the same port and data.
    pub async fn crash_and_restart(&self) -> Result<()> {
        self.sandbox.kill("cairn-hub");
        self.launch().await
    }

    /// Stops the hub (SIGTERM).
    pub fn stop(&self) {
        self.sandbox.stop("cairn-hub", Duration::from_secs(10));
    }

    /// SIGTERM to the hub: its exit status and how long it took, or an error if it was still
    /// running after `grace` (then killed). It can be started again.
    pub fn terminate(&self, grace: Duration) -> Result<(std::process::ExitStatus, Duration)> {
        self.sandbox.terminate("cairn-hub", grace)
    }

    /// Starts the stopped hub again on the same port and data, with `env` set on top of what it
    /// had (a later `CAIRN_CLOCK_OFFSET`, say).
    pub async fn start_again(&mut self, env: &[(&str, &str)]) -> Result<()> {
        for (k, v) in env {
            self.env.retain(|(key, _)| key != k);
            self.env.push(((*k).to_owned(), (*v).to_owned()));
        }
        self.launch().await
    }

    /// Where its Prometheus metrics are served (`host:port`).
    pub fn metrics_addr(&self) -> &str {
        self.metrics.trim_start_matches("http://")
    }

    /// The last lines of the running hub's log.
    pub fn log(&self) -> String {
        self.sandbox.log_tail("cairn-hub")
    }

    /// Everything the hub has logged, over all its runs.
    pub fn full_log(&self) -> String {
        self.sandbox.log("cairn-hub")
    }

    /// The running hub's process id (0 if it is not running), for its memory in `/proc`.
    pub fn pid(&self) -> u32 {
        self.sandbox
            .pids()
            .into_iter()
            .find_map(|(name, pid)| (name == "cairn-hub").then_some(pid))
            .unwrap_or(0)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The hub's own CA certificate (`<data_dir>/pki/ca.crt`): what its clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir().join("pki").join("ca.crt")
    }

    /// The hub as a client dials it: its URL, checked against its CA.
    pub fn dial(&self) -> Result<cairn_proto::dial::Hub> {
        let hub = cairn_proto::dial::Hub::with_ca_file(&self.url, Some(&self.ca_file()))?;
        Ok(hub.with_token(self.admin_token()?.into()))
    }

    /// The administrator's token, from the configuration the hub wrote on first start.
    pub fn admin_token(&self) -> Result<String> {
        let path = self.data_dir().join("admin.conf");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let config: serde_json::Value = serde_json::from_str(&text)?;
        config["token"]
            .as_str()
            .map(str::to_owned)
            .context("admin.conf without a token")
    }

    /// The hub's data directory (RocksDB, the default location under `backups/`).
    pub fn data_dir(&self) -> PathBuf {
        self.sandbox.dir().join("data")
    }

    /// A user-API client.
    pub async fn client(&self) -> Result<Client> {
        Ok(Client::connect(&self.dial()?).await?)
    }

    /// Runs `cairn ARGS…` against this hub and returns what it printed.
    pub async fn cli(&self, args: &[&str]) -> Result<CliOutput> {
        self.cli_as(&self.admin_token()?, args).await
    }

    /// Runs `cairn ARGS…` against this hub with bearer token `token`.
    pub async fn cli_as(&self, token: &str, args: &[&str]) -> Result<CliOutput> {
        cli(&self.url, Some(&self.ca_file()), Some(token), args).await
    }

    /// Runs `cairn` with `line` split at whitespace, as a shell would split it without quotes.
    pub async fn cli_line(&self, line: &str) -> Result<CliOutput> {
        self.cli(&line.split_whitespace().collect::<Vec<_>>()).await
    }

    /// `cairn LINE -o json`, parsed (the command must succeed).
    pub async fn json(&self, line: &str) -> Result<serde_json::Value> {
        let out = self.cli_line(&format!("{line} -o json")).await?.ok()?;
        Ok(serde_json::from_str(&out.stdout)?)
    }

    /// Backup `name` once it has ended (waiting up to `within`), and how many objects of
    /// `resource` (`configmaps`…) it holds.
    pub async fn ended_backup(
        &self,
        name: &str,
        within: Duration,
        resource: &str,
    ) -> Result<(cairn_proto::model::Backup, Option<u64>)> {
        let client = self.client().await?;
        let name: cairn_proto::model::BackupName = name.parse()?;
        let backup = crate::wait_until(&format!("backup {name} to end"), within, || {
            let (mut client, name) = (client.clone(), name.clone());
            async move {
                let b = client.backup(&name).await?;
                Ok(b.status.phase.is_final().then_some(b))
            }
        })
        .await?;
        let count = backup
            .status
            .resources
            .iter()
            .find(|r| r.resource == resource)
            .map(|r| r.count);
        Ok((backup, count))
    }

    /// A join token for cluster `cluster` (`cairn cluster add`, extra `args` appended).
    pub async fn join_token(&self, cluster: &str, args: &[&str]) -> Result<String> {
        let mut line = vec!["cluster", "add", cluster];
        line.extend_from_slice(args);
        let out = self.cli(&line).await?.ok()?;
        Ok(out.stdout.trim().to_owned())
    }

    /// Starts an agent for `cp`, enrolled as cluster `cp.name()` with a fresh join token (its
    /// identity kept in its sandbox), authenticated to the cluster by `kubeconfig` (the admin
    /// one if `None`); returns once the hub shows it connected.
    pub async fn agent(&self, cp: &ControlPlane, kubeconfig: Option<&Path>) -> Result<AgentProcess> {
        let token = self.join_token(cp.name(), &[]).await?;
        self.agent_with(cp, kubeconfig, &["--join", &token]).await
    }

    /// Starts an agent for `cp` with arguments `args` (a join token, or none to start from the
    /// identity it kept), its state directory in a sandbox of its own unless `args` name an
    /// `--identity-secret`; returns once the hub shows it connected.
    pub async fn agent_with(
        &self,
        cp: &ControlPlane,
        kubeconfig: Option<&Path>,
        args: &[&str],
    ) -> Result<AgentProcess> {
        let sandbox = Sandbox::new(&format!("agent-{}", cp.name()))?;
        let mut cmd = Command::new(workspace_bin("cairn-agent")?);
        cmd.args(args);
        if !args.contains(&"--identity-secret") {
            cmd.arg("--state-dir").arg(sandbox.dir().join("state"));
        }
        cmd.arg("--kubeconfig")
            .arg(kubeconfig.unwrap_or(cp.kubeconfig()))
            .env("RUST_LOG", self.log_level());
        let line = Line::of(&cmd);
        sandbox.spawn("cairn-agent", cmd)?;
        let client = self.client().await?;
        let what = format!("agent of {} to connect", cp.name());
        sandbox
            .wait_ready("cairn-agent", &what, START_TIMEOUT, || {
                connected(client.clone(), cp.name())
            })
            .await?;
        Ok(AgentProcess { sandbox, line })
    }
}

impl HubProcess {
    /// Starts `cairn-agent node` for node `node` of `cp`'s cluster, the kubelet's files under
    /// `kubelet_root`, as a node agent's pod would run it: the test plays the kubelet, making
    /// the Node, the node agent's pod bound to it and the pod's service-account token (audience
    /// `cairn`) that the cluster's agent (which must be connected) vouches for. Returns once it
    /// has linked to the hub.
    pub async fn node_agent(
        &self,
        cp: &ControlPlane,
        node: &str,
        kubelet_root: &Path,
    ) -> Result<AgentProcess> {
        self.node_agent_with(cp, node, kubelet_root, None).await
    }

    /// [`HubProcess::node_agent`], and if `capabilities` are given (as a container's
    /// `securityContext.capabilities.add` names them: `CHOWN`, `DAC_READ_SEARCH`…) and the test
    /// runs as root, with those capabilities only, as the container runtime starts it: uid 0,
    /// every other capability out of its bounding and inheritable sets, no new privileges
    /// (`setpriv`, util-linux). Not root, it runs as the test's user, with no capability at all.
    pub async fn node_agent_with(
        &self,
        cp: &ControlPlane,
        node: &str,
        kubelet_root: &Path,
        capabilities: Option<&[String]>,
    ) -> Result<AgentProcess> {
        let sandbox = Sandbox::new(&format!("node-agent-{}-{node}", cp.name()))?;
        let token = node_agent_token(cp, node).await?;
        let token_file = sandbox.dir().join("token");
        std::fs::write(&token_file, token)?;
        let agent = workspace_bin("cairn-agent")?;
        let mut cmd = match capabilities {
            Some(capabilities) if nix::unistd::geteuid().is_root() => {
                let keep: String = capabilities
                    .iter()
                    .map(|c| format!(",+{}", c.to_lowercase()))
                    .collect();
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--bounding-set=-all{keep}"))
                    .args(["--inh-caps=-all", "--no-new-privs", "--"])
                    .arg(agent);
                cmd
            }
            _ => Command::new(agent),
        };
        cmd.args(["node", "--hub", &self.url, "--cluster", cp.name(), "--node", node])
            .arg("--hub-ca")
            .arg(self.ca_file())
            .arg("--token-file")
            .arg(&token_file)
            .arg("--kubelet-root")
            .arg(kubelet_root)
            .env("RUST_LOG", self.log_level());
        let line = Line::of(&cmd);
        sandbox.spawn("cairn-agent", cmd)?;
        let what = format!("node agent of {node} to link to the hub");
        let log = sandbox.dir().join("cairn-agent.log");
        sandbox
            .wait_ready("cairn-agent", &what, START_TIMEOUT, || {
                let log = log.clone();
                async move {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    Ok(text.contains("linked to the hub").then_some(()))
                }
            })
            .await?;
        Ok(AgentProcess { sandbox, line })
    }
}

/// `Some(())` once the hub shows cluster `cluster`'s agent connected: a probe for
/// [`crate::wait_until`].
pub async fn connected(mut client: Client, cluster: &str) -> Result<Option<()>> {
    let clusters = client.clusters().await?;
    Ok(clusters
        .iter()
        .any(|c| c.name.as_str() == cluster && c.connected)
        .then_some(()))
}

/// Namespace and service account of node agents (the agent's default `--node-agents`).
pub const NODE_AGENTS: (&str, &str) = ("cairn-system", "cairn-node-agent");

/// What the kubelet gives a node agent's pod on `node`: the Node (made if missing), the pod
/// (`cairn-node-agent-<node>`, bound to the node, never started) and a service-account token
/// bound to that pod, audience `cairn`.
pub async fn node_agent_token(cp: &ControlPlane, node: &str) -> Result<String> {
    use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
    let (namespace, account) = NODE_AGENTS;
    let pod = format!("cairn-node-agent-{node}");
    cp.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {account}, namespace: {namespace}}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {namespace}}}\n\
         spec:\n  nodeName: {node}\n  serviceAccountName: {account}\n  automountServiceAccountToken: false\n\
         \x20 containers: [{{name: agent, image: cairn-agent}}]\n"
    ))
    .await?;
    let uid = kube::Api::<Pod>::namespaced(cp.client(), namespace)
        .get(&pod)
        .await?
        .metadata
        .uid
        .context("pod without uid")?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["cairn".into()],
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod),
                uid: Some(uid),
            }),
            expiration_seconds: Some(3600),
        },
        ..Default::default()
    };
    let issued = kube::Api::<ServiceAccount>::namespaced(cp.client(), namespace)
        .create_token_request(account, &Default::default(), &request)
        .await?;
    issued
        .status
        .map(|s| s.token)
        .context("TokenRequest answered without a token")
}

/// A running `cairn-agent`.
pub struct AgentProcess {
    sandbox: Sandbox,
    /// How it was started.
    line: Line,
}

/// A command as it was started, to start it again.
struct Line {
    program: std::ffi::OsString,
    args: Vec<std::ffi::OsString>,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl Line {
    fn of(cmd: &Command) -> Self {
        Self {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(ToOwned::to_owned).collect(),
            env: cmd
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
                .collect(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

impl AgentProcess {
    /// Kills the agent outright (SIGKILL, as a crash) and starts it again with the same
    /// arguments and state, without waiting for it to reach the hub (which may be down).
    pub fn crash_and_restart(&self) -> Result<()> {
        self.sandbox.kill("cairn-agent");
        self.sandbox.spawn("cairn-agent", self.line.command())?;
        Ok(())
    }

    /// Its state directory (`--state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.sandbox.dir().join("state")
    }

    /// The identity it keeps in its state directory (`identity.json`: hub, CA, cluster,
    /// certificate and key), as JSON.
    pub fn kept_identity(&self) -> Result<serde_json::Value> {
        let path = self.state_dir().join("identity.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.sandbox.pids().first().map_or(0, |(_, pid)| *pid)
    }

    /// The last lines of its log.
    pub fn log(&self) -> String {
        self.sandbox.log_tail("cairn-agent")
    }

    /// Everything it has logged.
    pub fn full_log(&self) -> String {
        self.sandbox.log("cairn-agent")
    }

    /// SIGTERM to the agent: its exit status and how long it took, or an error if it was still
    /// running after `grace` (then killed).
    pub fn terminate(&self, grace: Duration) -> Result<(std::process::ExitStatus, Duration)> {
        self.sandbox.terminate("cairn-agent", grace)
    }
}

/// What a `cairn` command printed, and how it ended.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Fails, quoting the output, unless the command exited 0.
    pub fn ok(self) -> Result<Self> {
        if self.code != Some(0) {
            bail!(
                "cairn exited {:?}\nstdout:\n{}\nstderr:\n{}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// Runs `cairn-agent ARGS…` until it exits (an agent that cannot start), for at most `timeout`.
pub async fn run_agent(args: &[&str], timeout: Duration) -> Result<CliOutput> {
    let mut cmd = tokio::process::Command::new(workspace_bin("cairn-agent")?);
    cmd.args(args).env("RUST_LOG", "warn").kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("cairn-agent {} still running after {timeout:?}", args.join(" ")))??;
    Ok(CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `cairn ARGS…` with `CAIRN_HUB=hub` and `CAIRN_CA=ca` (if given).
pub async fn run_cli(hub: &str, ca: Option<&Path>, args: &[&str]) -> Result<CliOutput> {
    cli(hub, ca, None, args).await
}

async fn cli(hub: &str, ca: Option<&Path>, token: Option<&str>, args: &[&str]) -> Result<CliOutput> {
    let mut cmd = Command::new(workspace_bin("cairn")?);
    cmd.args(args)
        .env("CAIRN_HUB", hub)
        .env_remove("CAIRN_CA")
        .env_remove("CAIRN_TOKEN")
        .env_remove("CAIRN_CONFIG");
    if let Some(ca) = ca {
        cmd.env("CAIRN_CA", ca);
    }
    if let Some(token) = token {
        cmd.env("CAIRN_TOKEN", token);
    }
    let out: Output = tokio::task::spawn_blocking(move || cmd.output()).await??;
    Ok(CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// What `backup list -o json` shows of each backup that a rebuilt catalog must show again: name,
/// cluster, namespaces, TTL, time, location, phase, items and bytes (not the workspace, which a
/// recovered hub may name otherwise).
pub fn catalog(list: &serde_json::Value) -> Vec<serde_json::Value> {
    let field = |b: &serde_json::Value, pointer: &str| b.pointer(pointer).cloned().unwrap_or_default();
    list.as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            serde_json::json!([
                field(b, "/spec/name"),
                field(b, "/spec/cluster"),
                field(b, "/spec/namespaces"),
                field(b, "/spec/ttl"),
                field(b, "/spec/created"),
                field(b, "/spec/location"),
                field(b, "/status/phase"),
                field(b, "/status/items"),
                field(b, "/status/bytes"),
            ])
        })
        .collect()
}

/// `started` and `finished` of a status in `describe -o json`: a backup's, a restore's, or one
/// volume's data in it (its node agent's time moving the data).
pub fn span(status: &serde_json::Value) -> Result<(Timestamp, Timestamp)> {
    let at = |field: &str| -> Result<Timestamp> {
        serde_json::from_value(status[field].clone()).with_context(|| format!("{field} in {status}"))
    };
    Ok((at("started")?, at("finished")?))
}
