//! Holding a restored application until its data is in.
//!
//! A restored pod that mounts a claim whose data the backup holds must not start its containers
//! on the still-empty volume (a database would initialise a fresh data directory, and the data
//! would then be written under it while it runs). So the restore gives such a pod, as it creates
//! it, a first init container `cairn-hold` (the agent's own image, `cairn-agent hold`) that waits
//! until the pod's annotation `cairn.dev/hold` says `released`, which it reads through a
//! downward-API volume: it needs no API access, no access to the tenant's files, and runs
//! unprivileged. The kubelet mounts every volume before the first init container runs; the node
//! agent writes the data once the volume is mounted (the mount itself, not the directory the
//! kubelet makes for it first: [`crate::node`]) while the pod waits.
//!
//! When the restore's data phase ends, each held pod is released if all its claims with data were
//! written, or marked `failed: …` with the reason otherwise: the hold then exits non-zero and the
//! pod stays in its init phase (`Init:CrashLoopBackOff`), its containers never started on an empty
//! volume, while the restore ends `PartiallyFailed` naming the claims.
//!
//! Pods made by a StatefulSet that mount such a claim are restored too (otherwise they are left to
//! their controller), held as above, before their StatefulSet is: it adopts them (same names and
//! labels) rather than making unheld ones. The StatefulSet's template is never changed, so nothing
//! restarts when the hold ends and later pods start as the user wrote them. Pods of a Deployment
//! are held the same way when the backup holds their ReplicaSet, restored after them and before
//! the Deployment, which adopts it; otherwise they are left to their controller, and not held (see
//! [`crate::restore::prepare`]).
//!
//! A pod held by a restore that can no longer end it (the agent restarted, the restore failed
//! before its data phase) is marked failed, so none waits for ever without saying why.
//!
//! A backup strips the hold (the init container, its volume and the annotation) from every pod, so
//! the next backup carries no trace of it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cairn_proto::model::VolumeResult;

/// The injected init container's name, and its volume's.
pub const NAME: &str = "cairn-hold";
/// The pod annotation the hold reads: `waiting: …`, `released`, or `failed: …`.
pub const ANNOTATION: &str = "cairn.dev/hold";
/// The annotation Kubernetes before 1.25 adds for the hold container's seccomp profile (the
/// field's alpha twin, kept in sync by the API server).
const SECCOMP_ANNOTATION: &str = "container.seccomp.security.alpha.kubernetes.io/cairn-hold";
/// The annotation's value that ends the hold.
pub const RELEASED: &str = "released";
/// Where the hold reads the annotation (a downward-API volume).
const DIR: &str = "/var/run/cairn-hold";
const FILE: &str = "state";
/// Attempts at ending one pod's hold, a poll apart.
const PATCH_ATTEMPTS: u32 = 5;
/// Pods listed at a time when looking for held ones.
const PAGE: u32 = 500;
/// How often the hold reads the annotation's file.
const POLL: Duration = Duration::from_secs(1);

/// The image the hold runs: the agent's own, as the agent's pod names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image reference.
    pub image: String,
    /// The agent container's pull policy, if set.
    pub pull_policy: Option<String>,
}

impl Image {
    /// `CAIRN_HOLD_IMAGE` if set, else the image of the agent's own pod (`CAIRN_POD_NAME`, in the
    /// client's namespace: deploy/agent.yaml sets it). `None` outside a cluster: restored pods
    /// are then not held (logged).
    pub async fn discover(client: &kube::Client) -> Option<Self> {
        if let Some(image) = std::env::var("CAIRN_HOLD_IMAGE").ok().filter(|i| !i.is_empty()) {
            return Some(Self {
                image,
                pull_policy: None,
            });
        }
        let name = std::env::var("CAIRN_POD_NAME").ok().filter(|n| !n.is_empty())?;
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        let pod = match pods.get(&name).await {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!(pod = name, error = %crate::kube_error(&e), "cannot read the agent's own pod: restored pods will not be held until their data is in");
                return None;
            }
        };
        let container = pod.spec?.containers.into_iter().next()?;
        Some(Self {
            image: container.image?,
            pull_policy: container.image_pull_policy,
        })
    }
}

/// The claims (names) that pod spec `spec` mounts.
pub fn claims_of(spec: &Value) -> Vec<String> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str())
        .map(str::to_owned)
        .collect()
}

/// Holds `pod` (a Pod object to create) until restore `restore` has written `claims`: the annotation,
/// the downward-API volume, and the init container, first.
pub fn inject(pod: &mut Value, image: &Image, restore: &str, claims: &[String]) {
    strip(pod);
    let waiting = Waiting {
        restore,
        claims: claims.iter().map(String::as_str).collect(),
    }
    .to_string();
    if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(ANNOTATION.into(), Value::String(waiting));
        }
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let volume = json!({"name": NAME, "downwardAPI": {"items": [
        {"path": FILE, "fieldRef": {"fieldPath": format!("metadata.annotations['{ANNOTATION}']")}}
    ]}});
    push(spec, "volumes", volume, false);
    let mut container = json!({
        "name": NAME,
        "image": image.image,
        "args": ["hold", "--file", format!("{DIR}/{FILE}")],
        "volumeMounts": [{"name": NAME, "mountPath": DIR, "readOnly": true}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
        "securityContext": {
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
        }
    });
    // The image's user (65532) unless the pod runs its containers as root, which runAsNonRoot
    // would refuse; a pod's own non-root uid (or the one OpenShift assigns) is kept.
    let root_pod = spec
        .get("securityContext")
        .and_then(|c| c.get("runAsUser"))
        .and_then(Value::as_i64)
        == Some(0);
    if root_pod {
        container["securityContext"]["runAsUser"] = json!(65532);
        container["securityContext"]["runAsGroup"] = json!(65532);
    }
    if let Some(policy) = &image.pull_policy {
        container["imagePullPolicy"] = Value::String(policy.clone());
    }
    push(spec, "initContainers", container, true);
}

fn push(spec: &mut serde_json::Map<String, Value>, field: &str, item: Value, first: bool) {
    let list = spec.entry(field).or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if first {
            list.insert(0, item);
        } else {
            list.push(item);
        }
    }
}

/// Removes any hold from `pod` (a Pod object): what a backup stores, and what a new hold replaces.
pub fn strip(pod: &mut Value) {
    let named = |v: &Value| v.get("name").and_then(Value::as_str) == Some(NAME);
    for (list, statuses) in [
        ("/spec/initContainers", "/status/initContainerStatuses"),
        ("/spec/volumes", ""),
    ] {
        for pointer in [list, statuses].into_iter().filter(|p| !p.is_empty()) {
            if let Some(items) = pod.pointer_mut(pointer).and_then(Value::as_array_mut) {
                items.retain(|v| !named(v));
            }
        }
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        for list in ["initContainers", "volumes"] {
            if spec
                .get(list)
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
            {
                spec.remove(list);
            }
        }
    }
    if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(ANNOTATION);
            annotations.remove(SECCOMP_ANNOTATION);
        }
        if metadata
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            metadata.remove("annotations");
        }
    }
}

/// A held pod's annotation while it waits: the restore it waits for and the claims that restore
/// writes (`waiting: restore R writes the data of claim(s) a, b`, read by users as by [`settle`]).
#[derive(Debug, PartialEq, Eq)]
struct Waiting<'a> {
    restore: &'a str,
    claims: Vec<&'a str>,
}

impl<'a> Waiting<'a> {
    /// The annotation's value, if the pod is waiting.
    fn parse(annotation: &'a str) -> Option<Self> {
        let rest = annotation.strip_prefix("waiting: restore ")?;
        let (restore, claims) = rest.split_once(" writes the data of claim")?;
        let claims = claims.strip_prefix("s ").or_else(|| claims.strip_prefix(' '))?;
        Some(Self {
            restore,
            claims: claims.split(", ").collect(),
        })
    }
}

impl std::fmt::Display for Waiting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.claims.len() == 1 { "" } else { "s" };
        write!(
            f,
            "waiting: restore {} writes the data of claim{plural} {}",
            self.restore,
            self.claims.join(", ")
        )
    }
}

/// Ends the hold of every pod restore `restore` holds (any restore's if `None`: the agent has just
/// started, and no restore it ran is running), in any namespace, once its data phase has ended
/// with `results` (each claim written, or failed): released where each claim the pod waits for was
/// written; `failed: …` naming each that was not, or that the restore never reached (it ended
/// early). Returns what could not be ended, naming each pod left held (also logged), for the
/// restore's status.
pub async fn settle(
    client: &kube::Client,
    restore: Option<&str>,
    results: &[VolumeResult],
) -> Option<String> {
    let mut outcome: BTreeMap<(&str, &str), Option<&str>> = BTreeMap::new();
    for r in results {
        // Two source namespaces mapped to one: a failure of either claim of that name wins.
        let seen = outcome
            .entry((r.namespace.as_str(), r.claim.as_str()))
            .or_default();
        *seen = seen.or(r.error.as_deref());
    }
    let held = match held_pods(client, restore).await {
        Ok(held) => held,
        Err(e) => {
            let why = crate::kube_error(&e);
            tracing::warn!(error = %why, "cannot list the pods this restore holds");
            return Some(format!(
                "the hold of the restored pods could not be ended (listing pods: {why}): they wait until their {ANNOTATION} annotation says {RELEASED}"
            ));
        }
    };
    let mut stuck = Vec::new();
    for Held {
        namespace,
        name,
        restore: held_by,
        claims,
    } in held
    {
        let failures: BTreeSet<String> = claims
            .iter()
            .filter_map(|c| match outcome.get(&(namespace.as_str(), c.as_str())) {
                Some(None) => None,
                Some(Some(error)) => Some(format!("claim {c}: {error}")),
                None if restore.is_none() => {
                    Some(format!("claim {c}: the agent restarted before writing it"))
                }
                None => Some(format!("claim {c}: the restore ended before writing it")),
            })
            .collect();
        let state = if failures.is_empty() {
            RELEASED.to_owned()
        } else {
            format!(
                "failed: restore {held_by} could not write the data of {}",
                failures.into_iter().collect::<Vec<_>>().join("; ")
            )
        };
        let patch = json!({"metadata": {"annotations": {ANNOTATION: state}}});
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match pods
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => tracing::info!(namespace, pod = name, state, "hold ended"),
                // Deleted meanwhile (a surplus pod its controller removed): nothing waits.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) if attempt < PATCH_ATTEMPTS => {
                    tracing::debug!(namespace, pod = name, error = %crate::kube_error(&e), "retrying the end of a hold");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
                Err(e) => {
                    let why = crate::kube_error(&e);
                    tracing::warn!(namespace, pod = name, error = %why, "cannot end the pod's hold: it stays held");
                    stuck.push(format!("{namespace}/{name} ({why})"));
                }
            }
            break;
        }
    }
    (!stuck.is_empty()).then(|| {
        format!(
            "the hold of {} pod(s) could not be ended, they wait until their {ANNOTATION} annotation says {RELEASED} or failed: {}",
            stuck.len(),
            stuck.join("; ")
        )
    })
}

/// A pod a restore holds: where it is, and what it waits for (its [`Waiting`] annotation).
struct Held {
    namespace: String,
    name: String,
    restore: String,
    claims: Vec<String>,
}

/// The pods, in any namespace, held by restore `restore` (any restore's if `None`). Pods are
/// listed by their metadata alone, a page at a time.
async fn held_pods(client: &kube::Client, restore: Option<&str>) -> Result<Vec<Held>, kube::Error> {
    let all: Api<Pod> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    let mut held = Vec::new();
    let mut restarted = false;
    loop {
        let page = match all.list_metadata(&params).await {
            // The continue token expired (the API server no longer keeps the list's revision):
            // once more from the start.
            Err(kube::Error::Api(status)) if status.code == 410 && !restarted => {
                restarted = true;
                held.clear();
                params = ListParams::default().limit(PAGE);
                continue;
            }
            page => page?,
        };
        for pod in page.items {
            let meta = pod.metadata;
            let annotation = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION));
            let Some(waiting) = annotation.and_then(|a| Waiting::parse(a)) else {
                continue;
            };
            if restore.is_none_or(|r| r == waiting.restore) {
                held.push(Held {
                    restore: waiting.restore.to_owned(),
                    claims: waiting.claims.iter().map(|c| (*c).to_owned()).collect(),
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                });
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(held),
        }
    }
}

/// `cairn-agent hold --file FILE`: waits until FILE (the pod's annotation, through the
/// downward API) says `released` (exit 0) or `failed: …` (exit non-zero, printing why).
pub async fn wait(file: &Path) -> anyhow::Result<()> {
    let mut said = String::new();
    loop {
        let state = std::fs::read_to_string(file).unwrap_or_default();
        let state = state.trim();
        if state == RELEASED {
            println!("the data is in: starting the application");
            return Ok(());
        }
        if state.starts_with("failed") {
            anyhow::bail!("{state}");
        }
        if state != said {
            println!(
                "{}",
                if state.is_empty() {
                    "waiting for Cairn's restore"
                } else {
                    state
                }
            );
            said = state.to_owned();
        }
        // PID 1 of its container: without a handler SIGTERM would be ignored, and a held pod
        // deleted would wait out its grace period.
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = cairn_proto::process::terminated() => anyhow::bail!("stopped while waiting for the data"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        Image {
            image: "cairn/agent:0.1.0".into(),
            pull_policy: Some("IfNotPresent".into()),
        }
    }

    #[test]
    fn the_hold_runs_first_and_a_backup_strips_it_whole() {
        let original = json!({
            "metadata": {"name": "db-0", "annotations": {"team": "data"}},
            "spec": {
                "initContainers": [{"name": "initdb", "image": "postgres"}],
                "containers": [{"name": "db", "image": "postgres"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]
            }
        });
        let mut pod = original.clone();
        inject(&mut pod, &image(), "back", &["data-db-0".into()]);
        assert_eq!(pod["spec"]["initContainers"][0]["name"], NAME);
        assert_eq!(
            pod["spec"]["initContainers"][1]["name"], "initdb",
            "the tenant's init containers run after the data is in"
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["securityContext"]["runAsNonRoot"],
            true
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "waiting: restore back writes the data of claim data-db-0"
        );
        assert_eq!(
            pod["spec"]["volumes"][1]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.annotations['cairn.dev/hold']"
        );
        // Injected twice (a pod backed up while held, restored again): still one hold.
        inject(&mut pod, &image(), "again", &["data-db-0".into()]);
        assert_eq!(pod["spec"]["initContainers"].as_array().map(Vec::len), Some(2));

        // As the API server of Kubernetes 1.20 stores it.
        pod["metadata"]["annotations"][SECCOMP_ANNOTATION] = json!("runtime/default");
        pod["status"] = json!({"initContainerStatuses": [{"name": NAME}, {"name": "initdb"}]});
        strip(&mut pod);
        pod["status"] = Value::Null;
        let mut expected = original;
        expected["status"] = Value::Null;
        assert_eq!(pod, expected);
    }

    #[test]
    fn a_pod_without_init_containers_keeps_none_after_the_strip() {
        let original = json!({"metadata": {"name": "tool"}, "spec": {"containers": [{"name": "c"}]}});
        let mut pod = original.clone();
        inject(&mut pod, &image(), "r", &["a".into(), "b".into()]);
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "waiting: restore r writes the data of claims a, b"
        );
        strip(&mut pod);
        assert_eq!(pod, original);
    }

    #[test]
    fn a_pod_waits_for_the_restore_and_claims_its_annotation_names() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        inject(&mut pod, &image(), "back", &["data-0".into(), "logs".into()]);
        let annotation = pod["metadata"]["annotations"][ANNOTATION]
            .as_str()
            .unwrap_or_default();
        let waiting = |restore, claims| Some(Waiting { restore, claims });
        assert_eq!(
            Waiting::parse(annotation),
            waiting("back", vec!["data-0", "logs"])
        );
        assert_eq!(Waiting::parse(RELEASED), None);
        assert_eq!(
            Waiting::parse("failed: restore back could not write the data of claim a: gone"),
            None
        );
        inject(&mut pod, &image(), "one", &["data".into()]);
        let annotation = pod["metadata"]["annotations"][ANNOTATION]
            .as_str()
            .unwrap_or_default();
        assert_eq!(Waiting::parse(annotation), waiting("one", vec!["data"]));
    }

    #[tokio::test]
    async fn the_hold_ends_when_released_and_fails_saying_why() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("state");
        std::fs::write(&file, "waiting: restore r writes the data of claim a").expect("write");
        let waiting = tokio::spawn({
            let file = file.clone();
            async move { wait(&file).await }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!waiting.is_finished(), "held while waiting");
        std::fs::write(&file, RELEASED).expect("write");
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released within a poll")
            .expect("task")
            .expect("released is success");

        std::fs::write(
            &file,
            "failed: restore r could not write the data of claim a: no node agent",
        )
        .expect("write");
        let err = wait(&file).await.expect_err("failed");
        assert_eq!(
            err.to_string(),
            "failed: restore r could not write the data of claim a: no node agent"
        );
    }
}
