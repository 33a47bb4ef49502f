//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager
//! v1.20.2, with static-token auth (an admin token in `system:masters`) and RBAC.
//!
//! Started with [`ControlPlane::start`] it has no kubelet and no scheduler: Pods stay Pending,
//! which resource backup does not mind, and volume tests lay out kubelet directories themselves.
//! [`ControlPlane::start_with_nodes`] adds kube-scheduler and real [`Node`]s, where pods run.

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::node::{self, Node};
use crate::{Ca, Sandbox, bin, free_port, manifest, pki};

/// How long a control plane may take to come up: cold page cache and two cores.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Start attempts: a port taken between choosing it and binding it costs one attempt.
const START_ATTEMPTS: usize = 3;
/// The Service network; `10.0.0.1` is the `kubernetes` Service.
const SERVICE_CIDR: &str = "10.0.0.0/24";

/// A running control plane; stopped, with its data removed, on drop.
pub struct ControlPlane {
    name: String,
    server: String,
    token: String,
    ca_pem: String,
    kubeconfig: PathBuf,
    client: kube::Client,
    /// Before the sandbox: nodes stop while their API server still runs.
    nodes: Vec<Node>,
    sandbox: Sandbox,
}

impl ControlPlane {
    /// Starts a control plane named `cluster` and waits until its controllers work (the
    /// `default` ServiceAccount has its token Secret and `kube-root-ca.crt` is published).
    pub async fn start(cluster: &str) -> Result<Self> {
        Self::start_with_nodes(cluster, 0).await
    }

    /// [`ControlPlane::start`], then kube-scheduler and `nodes` real nodes (kubelet and
    /// containerd, see [`Node`]), each Ready. Tests that start nodes belong to nextest's
    /// `real-nodes` group (their names contain `on_real_nodes`).
    pub async fn start_with_nodes(cluster: &str, nodes: usize) -> Result<Self> {
        crate::init();
        let mut last = None;
        for attempt in 1..=START_ATTEMPTS {
            match Self::start_once(cluster, nodes).await {
                Ok(cp) => return Ok(cp),
                Err(e) => {
                    tracing::warn!(cluster, attempt, error = %format!("{e:#}"), "control plane did not start");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt made")))
            .with_context(|| format!("starting control plane {cluster}"))
    }

    async fn start_once(cluster: &str, node_count: usize) -> Result<Self> {
        let sandbox = Sandbox::new(&format!("k8s-{cluster}"))?;
        let dir = sandbox.dir().to_owned();
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);

        let ca = Ca::new(cluster)?;
        let serving = ca.issue(&[
            "127.0.0.1",
            "localhost",
            "10.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ])?;
        let token = format!("cairn-admin-{}", random_hex());
        write(&dir, "ca.crt", &ca.cert_pem())?;
        write(&dir, "apiserver.crt", &serving.cert_pem)?;
        write(&dir, "apiserver.key", &serving.key_pem)?;
        // The API server's client certificate for kubelets (logs, exec), in system:masters.
        let kubelet_client = ca.issue_client("kube-apiserver-kubelet-client", &["system:masters"])?;
        write(&dir, "kubelet-client.crt", &kubelet_client.cert_pem)?;
        write(&dir, "kubelet-client.key", &kubelet_client.key_pem)?;
        let sa_key = pki::private_key()?;
        write(&dir, "sa.key", &sa_key.serialize_pem())?;
        write(&dir, "sa.pub", &sa_key.public_key_pem())?;
        write(
            &dir,
            "tokens.csv",
            &format!("{token},admin,admin,\"system:masters\"\n"),
        )?;

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Command::new(bin("etcd")?);
        etcd.arg("--name=default")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--log-level=warn");
        sandbox.spawn("etcd", etcd)?;
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes())?)
            .build()?;
        sandbox
            .wait_ready("etcd", "etcd health", START_TIMEOUT, || async {
                let ok = http.get(format!("{etcd_url}/health")).send().await.ok();
                Ok(ok.filter(|r| r.status().is_success()).map(|_| ()))
            })
            .await?;

        let p = |f: &str| dir.join(f).display().to_string();
        let mut apiserver = Command::new(bin("kube-apiserver")?);
        apiserver
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={api_port}"))
            .arg("--insecure-port=0")
            .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--token-auth-file={}", p("tokens.csv")))
            // Kubelets authenticate with client certificates of this CA, and are authorised as
            // nodes: each reads and writes only what its own pods need.
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg("--authorization-mode=Node,RBAC")
            .arg("--enable-admission-plugins=NodeRestriction")
            .arg(format!(
                "--kubelet-client-certificate={}",
                p("kubelet-client.crt")
            ))
            .arg(format!("--kubelet-client-key={}", p("kubelet-client.key")))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!("--service-account-signing-key-file={}", p("sa.key")))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .arg("--v=1");
        sandbox.spawn("kube-apiserver", apiserver)?;

        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        write(
            &dir,
            "kubeconfig",
            &kubeconfig_yaml(cluster, &server, &ca.cert_pem(), &token),
        )?;
        sandbox
            .wait_ready(
                "kube-apiserver",
                "kube-apiserver /readyz",
                START_TIMEOUT,
                || async {
                    let resp = http
                        .get(format!("{server}/readyz"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .ok();
                    Ok(resp.filter(|r| r.status().is_success()).map(|_| ()))
                },
            )
            .await?;
        let client = client_for(&kubeconfig).await?;

        let mut kcm = Command::new(bin("kube-controller-manager")?);
        kcm.arg(format!("--kubeconfig={}", kubeconfig.display()))
            // Pod networks are the nodes' own (no node IPAM); without nodes the node lifecycle
            // controller would only complain.
            .arg(if node_count > 0 {
                "--controllers=*,-nodeipam"
            } else {
                "--controllers=*,-nodeipam,-nodelifecycle"
            })
            .arg(format!("--service-account-private-key-file={}", p("sa.key")))
            .arg(format!("--root-ca-file={}", p("ca.crt")))
            .arg("--use-service-account-credentials=false")
            .arg("--leader-elect=false")
            .arg("--port=0")
            .arg("--secure-port=0")
            .arg(format!("--cluster-name={cluster}"))
            .arg("--v=1");
        sandbox.spawn("kube-controller-manager", kcm)?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let what = "controllers (default token Secret, kube-root-ca.crt)";
        sandbox
            .wait_ready("kube-controller-manager", what, START_TIMEOUT, || async {
                let sa = accounts.get_opt("default").await.ok().flatten();
                let has_token = sa.and_then(|sa| sa.secrets).is_some_and(|s| !s.is_empty());
                let has_ca = config_maps
                    .get_opt("kube-root-ca.crt")
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                Ok((has_token && has_ca).then_some(()))
            })
            .await?;

        let mut nodes = Vec::new();
        if node_count > 0 {
            let mut scheduler = Command::new(bin("kube-scheduler")?);
            let k = kubeconfig.display();
            scheduler
                .arg(format!("--kubeconfig={k}"))
                .arg(format!("--authentication-kubeconfig={k}"))
                .arg(format!("--authorization-kubeconfig={k}"))
                .arg("--port=0")
                .arg(format!("--secure-port={}", free_port()?))
                .arg("--bind-address=127.0.0.1")
                .arg("--leader-elect=false")
                .arg("--v=1");
            sandbox.spawn("kube-scheduler", scheduler)?;
            let parts = node::Cluster {
                name: cluster,
                server: &server,
                ca: &ca,
                client: client.clone(),
            };
            for _ in 0..node_count {
                nodes.push(Node::start(&parts).await?);
            }
            sandbox.ensure_running("kube-scheduler")?;
        }

        tracing::info!(cluster, server, dir = %dir.display(), nodes = nodes.len(), "control plane ready");
        Ok(Self {
            name: cluster.to_owned(),
            server,
            token,
            ca_pem: ca.cert_pem(),
            kubeconfig,
            client,
            nodes,
            sandbox,
        })
    }

    /// The cluster's name (as given to [`ControlPlane::start`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client with the admin token.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The kubeconfig file (admin token, the cluster's CA).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The admin bearer token (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// The CA certificate (PEM) that signed the API server's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The cluster's real nodes (none unless started with [`ControlPlane::start_with_nodes`]).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The sandbox holding the servers' data, logs and pid files.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// A kubeconfig for this cluster that authenticates with `token` (a ServiceAccount's, say),
    /// written next to the admin one as `kubeconfig-<user>`.
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> Result<PathBuf> {
        let name = format!("kubeconfig-{user}");
        write(
            self.sandbox.dir(),
            &name,
            &kubeconfig_yaml(&self.name, &self.server, &self.ca_pem, token),
        )?;
        Ok(self.sandbox.dir().join(name))
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/name`, once the token
    /// controller has issued its token Secret.
    pub async fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> Result<PathBuf> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), namespace);
        let token = crate::wait_until(
            &format!("token of ServiceAccount {namespace}/{name}"),
            START_TIMEOUT,
            || async {
                let Some(sa) = accounts.get_opt(name).await? else {
                    return Ok(None);
                };
                let Some(secret) = sa.secrets.unwrap_or_default().into_iter().find_map(|r| r.name) else {
                    return Ok(None);
                };
                let data = secrets.get(&secret).await?.data.unwrap_or_default();
                Ok(data
                    .get("token")
                    .map(|t| String::from_utf8_lossy(&t.0).into_owned()))
            },
        )
        .await?;
        self.kubeconfig_for(&format!("{namespace}-{name}"), &token)
    }

    /// StorageClass `local` (no provisioner, binding when a pod is scheduled) and `per_node` local
    /// PersistentVolumes of 1 GiB on each node (`local-<node>-<i>`, in the node's sandbox): claims
    /// of that class bind to a volume on the node where their pod is placed, as with a real
    /// cluster's local volumes. Their directories are the nodes' [`Node::volume_dir`]s.
    pub async fn provide_local_volumes(&self, per_node: usize) -> Result<()> {
        let mut yaml = String::from(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: local}\n\
             provisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer\n",
        );
        for node in &self.nodes {
            for i in 0..per_node {
                let name = format!("local-{}-{i}", node.name());
                let dir = node.volume_dir(&name)?;
                yaml.push_str(&format!(
                    "---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  \
                     capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  \
                     persistentVolumeReclaimPolicy: Retain\n  storageClassName: local\n  \
                     local: {{path: '{}'}}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      \
                     - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: ['{}']}}]\n",
                    dir.display(),
                    node.name()
                ));
            }
        }
        self.apply(&yaml).await?;
        Ok(())
    }

    /// A new namespace `namespace` holding `count` ConfigMaps (`cm-0000`…) of 4 KiB each.
    pub async fn fill_config_maps(&self, namespace: &str, count: usize) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"
        ))
        .await?;
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client(), namespace);
        futures::stream::iter(0..count)
            .map(|i| {
                let api = config_maps.clone();
                async move {
                    let mut cm = ConfigMap::default();
                    cm.metadata.name = Some(format!("cm-{i:04}"));
                    cm.data = Some([("filler".to_owned(), "x".repeat(4096))].into());
                    api.create(&kube::api::PostParams::default(), &cm).await
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// A new namespace `namespace` holding `count` ConfigMaps (`blob-000`…) of 400 kB of
    /// incompressible text each: a backup of many parts, that takes a while to write and read.
    pub async fn fill_incompressible(&self, namespace: &str, count: usize) -> Result<()> {
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n"
        ))
        .await?;
        let api: Api<ConfigMap> = Api::namespaced(self.client(), namespace);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut creates = Vec::new();
        for i in 0..count {
            let blob: String = (0..400_000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(b'!' + (seed % 90) as u8)
                })
                .collect();
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(format!("blob-{i:03}"));
            cm.data = Some([("blob".to_owned(), blob)].into());
            let api = api.clone();
            creates.push(async move { api.create(&kube::api::PostParams::default(), &cm).await });
        }
        futures::future::try_join_all(creates).await?;
        Ok(())
    }

    /// Applies a multi-document YAML manifest with the admin client; see [`manifest::apply`].
    pub async fn apply(&self, yaml: &str) -> Result<Vec<DynamicObject>> {
        manifest::apply(&self.client, yaml).await
    }
}

/// A client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let config =
        Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn kubeconfig_yaml(cluster: &str, server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {cluster}-user\n  user:\n    token: {token}\n\
         contexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}-user\n\
         current-context: {cluster}\n"
    )
}

fn write(dir: &Path, name: &str, content: &str) -> Result<()> {
    fs::write(dir.join(name), content).with_context(|| format!("writing {name}"))
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
