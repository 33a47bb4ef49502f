//! The PersistentVolumeClaims whose data a backup or restore moves. The cluster agent knows the
//! claims and the pods; node agents hold the data. For each claim this finds the pod that mounts
//! it and that pod's node, asks that node's agent (through [`crate::relay`]) to back the volume
//! up or to restore a snapshot into it, and follows their progress.

use cairn_proto::model::{BackupSpec, Location, RestoreSpec, VolumeResult, VolumeTask, VolumeTaskId};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use std::collections::HashMap;
use std::time::Duration;

use crate::relay::Asked;
use crate::relay::Volumes;
use crate::report::Reporter;

/// How often a restore looks whether its claim is bound and mounted (one claim at a time: two
/// reads per look).
const POLL: Duration = Duration::from_millis(200);

/// How long a volume task may go without a word from its node agent (which reports progress
/// every second, working or waiting for its turn) before the cluster agent gives up on it. Long
/// enough for a link to the hub to drop and come back: the node agent's result is repeated then.
const SILENT_TASK: Duration = Duration::from_secs(600);

/// A claim a backup selected.
#[derive(Debug, Clone)]
pub struct Claim {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The PersistentVolume it is bound to, if it is.
    pub volume: Option<String>,
}

/// Where a claim's data is now: the pod mounting it and that pod's node.
struct Mount {
    pod: String,
    pod_uid: String,
    node: String,
}

/// Backs up the data of `claims` into the repository of `location`: one task per claim to the
/// agent of the node where a pod mounts it. Claims no placed pod mounts are reported, not taken.
pub async fn back_up(
    client: &kube::Client,
    spec: &BackupSpec,
    location: &Location,
    volumes: &Volumes,
    claims: Vec<Claim>,
    reporter: &mut Reporter,
) -> Vec<VolumeResult> {
    let mut pods: HashMap<String, Result<Vec<Pod>, String>> = HashMap::new();
    let mut asked = Vec::new();
    let mut results = Vec::new();
    for claim in claims {
        let mut result = VolumeResult {
            namespace: claim.namespace.clone(),
            claim: claim.name.clone(),
            volume: claim.volume.clone().unwrap_or_default(),
            ..VolumeResult::default()
        };
        let Some(volume) = claim.volume else {
            result.error = Some("not bound to a volume: no data to take".into());
            results.push(result);
            continue;
        };
        if !pods.contains_key(&claim.namespace) {
            let listed = list_pods(client, &claim.namespace).await.map_err(|e| {
                format!(
                    "listing the pods of namespace {}: {}",
                    claim.namespace,
                    crate::kube_error(&e)
                )
            });
            pods.insert(claim.namespace.clone(), listed);
        }
        let mount = match &pods[&claim.namespace] {
            Ok(listed) => mounting(listed, &claim.name).ok_or_else(|| {
                "no pod placed on a node mounts it: its data is reachable only through a mounting pod"
                    .to_owned()
            }),
            Err(why) => Err(why.clone()),
        };
        let mount = match mount {
            Ok(mount) => mount,
            Err(why) => {
                result.error = Some(why);
                results.push(result);
                continue;
            }
        };
        let task = VolumeTask {
            id: VolumeTaskId::new(spec.name.clone(), &claim.namespace, &claim.name),
            cluster: volumes.cluster.clone(),
            node: mount.node.clone(),
            location: location.clone(),
            key: volumes.key.clone(),
            pod_uid: mount.pod_uid,
            volume,
            source: format!("{}/{}/{}", spec.cluster, claim.namespace, claim.name),
            tag: spec.name.to_string(),
            snapshot: None,
            keep_setid: false,
        };
        (result.node, result.pod) = (mount.node, mount.pod);
        asked.push((result, volumes.relay.ask(task).await));
    }
    results.extend(follow(asked, reporter, SILENT_TASK).await);
    results
}

/// Restores the claims of `backed_up` that `spec` covers: waits for each restored claim to be
/// bound and a pod mounting it to be placed, then asks that node's agent to write the snapshot
/// into the new volume.
pub async fn restore(
    client: &kube::Client,
    spec: &RestoreSpec,
    backed_up: &[VolumeResult],
    location: &Location,
    volumes: &Volumes,
    reporter: &mut Reporter,
) -> Vec<VolumeResult> {
    let mut asked = Vec::new();
    let mut results = Vec::new();
    let wait = spec.volume_wait();
    let deadline = tokio::time::Instant::now() + wait;
    for source in backed_up
        .iter()
        .filter(|v| !v.snapshot.is_empty() && spec.namespaces.covers(&v.namespace))
    {
        let namespace = spec.map_namespace(&source.namespace).to_owned();
        let mut result = VolumeResult {
            namespace: namespace.clone(),
            claim: source.claim.clone(),
            snapshot: source.snapshot.clone(),
            ..VolumeResult::default()
        };
        reporter.volumes(
            0,
            0,
            &format!(
                "waiting for {}/{} to be bound and mounted",
                namespace, source.claim
            ),
        );
        let (volume, mount) = match placed(client, &namespace, &source.claim, deadline).await {
            Ok(placed) => {
                tracing::info!(
                    namespace,
                    claim = source.claim,
                    volume = placed.0,
                    node = placed.1.node,
                    pod = placed.1.pod,
                    "restored claim bound and placed: asking its node agent"
                );
                placed
            }
            Err(why) => {
                result.error = Some(format!(
                    "gave up after {} (--volume-wait) waiting for the restored claim to be bound and mounted by a pod on a node: {why}",
                    humantime::format_duration(wait)
                ));
                results.push(result);
                continue;
            }
        };
        let task = VolumeTask {
            id: VolumeTaskId::new(spec.name.clone(), &namespace, &source.claim),
            cluster: volumes.cluster.clone(),
            node: mount.node.clone(),
            location: location.clone(),
            key: volumes.key.clone(),
            pod_uid: mount.pod_uid,
            volume: volume.clone(),
            source: String::new(),
            tag: String::new(),
            snapshot: Some(source.snapshot.clone()),
            keep_setid: spec.keep_setid,
        };
        (result.volume, result.node, result.pod) = (volume, mount.node, mount.pod);
        asked.push((result, volumes.relay.ask(task).await));
    }
    results.extend(follow(asked, reporter, SILENT_TASK).await);
    results
}

/// Waits for every asked task, reporting the files and bytes moved by all of them together; a
/// task not heard of for `silent` fails, naming its node.
async fn follow(
    asked: Vec<(VolumeResult, Asked)>,
    reporter: &mut Reporter,
    silent: Duration,
) -> Vec<VolumeResult> {
    let total = asked.len();
    let mut results = Vec::with_capacity(total);
    let start = tokio::time::Instant::now();
    let mut waiting: Vec<_> = asked.into_iter().map(|(r, a)| (r, a, start)).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !waiting.is_empty() {
        tick.tick().await;
        let mut still = Vec::with_capacity(waiting.len());
        for (mut result, mut asked, mut heard) in waiting {
            if asked.progress.has_changed().unwrap_or(false) {
                asked.progress.mark_unchanged();
                heard = tokio::time::Instant::now();
            }
            match asked.done.try_recv() {
                Ok(done) => {
                    merge(&mut result, done);
                    results.push(result);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) if heard.elapsed() > silent => {
                    result.error = Some(format!(
                        "no word from the node agent of node {} for {}: given up",
                        result.node,
                        humantime::format_duration(silent)
                    ));
                    results.push(result);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => still.push((result, asked, heard)),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    result.error =
                        Some("the agent's link to the hub was lost while the node agent worked".into());
                    results.push(result);
                }
            }
        }
        waiting = still;
        let (mut files, mut bytes) = (0, 0);
        for r in &results {
            (files, bytes) = (files + r.files, bytes + r.bytes);
        }
        for (_, asked, _) in &waiting {
            let (f, b) = *asked.progress.borrow();
            (files, bytes) = (files + f, bytes + b);
        }
        let current = format!("volumes: {} of {total} claims done", results.len());
        reporter.volumes(files, bytes, &current);
    }
    results
}

/// A node agent's answer into the result the cluster agent started.
fn merge(result: &mut VolumeResult, done: VolumeResult) {
    if !done.node.is_empty() {
        result.node = done.node;
    }
    if !done.snapshot.is_empty() {
        result.snapshot = done.snapshot;
    }
    result.files = done.files;
    result.bytes = done.bytes;
    result.bytes_read = done.bytes_read;
    result.bytes_added = done.bytes_added;
    result.error = done.error;
    result.started = done.started;
    result.finished = done.finished;
}

async fn list_pods(client: &kube::Client, namespace: &str) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    Ok(api.list(&ListParams::default()).await?.items)
}

/// The pod among `pods` that mounts claim `claim` and is placed on a node (a running one first).
fn mounting(pods: &[Pod], claim: &str) -> Option<Mount> {
    let mounts = |p: &&Pod| {
        p.spec.as_ref().is_some_and(|s| {
            s.node_name.as_deref().is_some_and(|n| !n.is_empty())
                && s.volumes.iter().flatten().any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == claim)
                })
        })
    };
    let phase = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default()
    };
    let live: Vec<&Pod> = pods
        .iter()
        .filter(mounts)
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !matches!(phase(p).as_str(), "Succeeded" | "Failed")
        })
        .collect();
    let pod = live
        .iter()
        .find(|p| phase(p) == "Running")
        .or_else(|| live.first())?;
    Some(Mount {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        node: pod.spec.as_ref()?.node_name.clone()?,
    })
}

/// Waits (until `deadline`) for claim `namespace/name` to be bound and a pod mounting it
/// to be placed: returns its volume and that pod, or what it last saw.
async fn placed(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    deadline: tokio::time::Instant,
) -> Result<(String, Mount), String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut last = String::from("not yet looked");
    while tokio::time::Instant::now() < deadline {
        match claims.get_opt(name).await {
            Ok(Some(claim)) => {
                let volume = claim.spec.and_then(|s| s.volume_name).filter(|v| !v.is_empty());
                match volume {
                    None => last = "the claim is not bound to a volume".into(),
                    Some(volume) => match list_pods(client, namespace).await {
                        Ok(pods) => match mounting(&pods, name) {
                            Some(mount) => return Ok((volume, mount)),
                            None => last = "no pod mounting the claim is placed on a node".into(),
                        },
                        Err(e) => last = format!("listing pods: {}", crate::kube_error(&e)),
                    },
                }
            }
            Ok(None) => last = "the claim does not exist in the target".into(),
            Err(e) => last = format!("reading the claim: {}", crate::kube_error(&e)),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::model::BackupName;
    use tokio::sync::{mpsc, oneshot, watch};

    fn on(node: &str) -> VolumeResult {
        VolumeResult {
            node: node.into(),
            ..VolumeResult::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_never_heard_of_fails_at_the_deadline_and_one_reporting_progress_does_not() {
        let (quiet_done, quiet_rx) = oneshot::channel::<VolumeResult>();
        let (_quiet_progress, quiet_progress_rx) = watch::channel((0, 0));
        let (busy_done, busy_rx) = oneshot::channel();
        let (busy_progress, busy_progress_rx) = watch::channel((0, 0));
        // The busy node agent reports every 30 s for 15 minutes (longer than the deadline), then ends.
        tokio::spawn(async move {
            for i in 1..=30 {
                tokio::time::sleep(Duration::from_secs(30)).await;
                busy_progress.send_replace((i, i * 10));
            }
            let _ = busy_done.send(VolumeResult {
                files: 30,
                bytes: 300,
                ..VolumeResult::default()
            });
        });
        let (tx, _rx) = mpsc::channel(64);
        let mut reporter = Reporter::new("nightly".parse::<BackupName>().expect("name"), tx);
        let start = tokio::time::Instant::now();
        let asked = vec![
            (
                on("quiet"),
                Asked {
                    progress: quiet_progress_rx,
                    done: quiet_rx,
                },
            ),
            (
                on("busy"),
                Asked {
                    progress: busy_progress_rx,
                    done: busy_rx,
                },
            ),
        ];
        let results = follow(asked, &mut reporter, Duration::from_secs(600)).await;
        let quiet = results.iter().find(|r| r.node == "quiet").expect("quiet");
        assert_eq!(
            quiet.error.as_deref(),
            Some("no word from the node agent of node quiet for 10m: given up")
        );
        let busy = results.iter().find(|r| r.node == "busy").expect("busy");
        assert_eq!((busy.error.as_deref(), busy.files, busy.bytes), (None, 30, 300));
        assert!(
            start.elapsed() >= Duration::from_secs(900),
            "waited for the busy one"
        );
        drop(quiet_done);
    }
}
