//! Restoring a backup into a cluster: read the manifest, check that every object of the backup is
//! there as written ([`intact`]), take the resource types in dependency order ([`order`]),
//! prepare each object for the target ([`prepare`]), create it (or skip or update one that
//! exists), and report every item.

pub mod guard;
pub mod intact;
pub mod order;
pub mod prepare;
pub mod rules;

use cairn_proto::format::{self, BackupKeys, ObjectKind, ObjectSeal, PartReader, SealedStore};
use cairn_proto::model::{
    ExistingPolicy, GroupKind, ItemRef, ItemResult, Location, Manifest, Outcome, OutcomeCounts, Phase,
    Report, ResourceKeys, ResourceSummary, RestoreSpec, RestoreStatus, Timestamp, VolumeResult,
};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiResource, Scope};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::claims;
use crate::relay::Volumes;
use crate::report::Reporter;
use cairn_proto::error_chain as report;
use prepare::{Decision, Preparer};

/// Objects created at once: enough to keep the API server busy, few enough not to swamp it.
const PARALLEL_CREATES: usize = 32;
/// How long a pod may wait for its namespace's service account to be ready.
const ACCOUNT_WAIT: Duration = Duration::from_secs(60);
/// How long a restored CRD may take to become Established, and its kind to be served.
const CRD_READY: Duration = Duration::from_secs(60);

/// A failure that ends a restore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location could not be opened.
    #[error(transparent)]
    Location(#[from] format::location::Error),
    /// The backup has no manifest: it never finished, or was deleted.
    #[error("backup {backup} has no manifest in location {location}: it never finished or was deleted")]
    NoManifest {
        /// The backup.
        backup: String,
        /// The location.
        location: String,
    },
    /// Reading or writing in the location failed, or what was read does not open or decode.
    #[error(transparent)]
    Store(#[from] format::sealed_store::Error),
    /// The location's keys are malformed.
    #[error("sealing with the location's keys")]
    Seal(#[source] cairn_proto::seal::Error),
    /// Objects of the backup are missing or not as written: nothing was restored.
    #[error(
        "backup {backup} is damaged, nothing was restored: {damage} (restore with --partial to restore what is intact)"
    )]
    Damaged {
        /// The backup.
        backup: String,
        /// Each damaged object and what is wrong with it.
        damage: String,
    },
    /// An object part does not decode.
    #[error("object part {key} is corrupt")]
    Part {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Runs restore `spec` from `location` (objects sealed under `resources`) into the cluster behind
/// `client`; reports progress and the
/// result.
#[tracing::instrument(name = "restore", skip_all, fields(restore.id = %spec.name, backup.id = %spec.backup))]
pub async fn run(
    client: kube::Client,
    spec: RestoreSpec,
    (location, resources): (Location, ResourceKeys),
    mut reporter: Reporter,
    volumes: Volumes,
) {
    reporter.started().await;
    let started = Timestamp::now();
    let opened = format::open_location(&location)
        .map_err(Error::from)
        .and_then(|store| {
            let seal = ObjectSeal::new(&resources).map_err(Error::Seal)?;
            Ok(Arc::new(SealedStore::new(store, &location.name, seal)))
        });
    let (outcome, results) = match opened {
        Err(e) => (Err(e), None),
        Ok(source) => {
            let mut results = Results::new(source.clone(), &spec);
            let mut outcome = execute(&client, &spec, &source, &mut reporter, &mut results).await;
            if let Err(e) = results.flush().await {
                outcome = outcome.and(Err(e));
            }
            // The objects are in: claims with data in the backup get it back once their new
            // volumes are bound and mounted.
            let outcome = match outcome {
                Ok((backed_up, damage)) if !spec.dry_run && !backed_up.is_empty() => {
                    tracing::info!(claims = backed_up.len(), "objects restored; now the claims' data");
                    let restored =
                        claims::restore(&client, &spec, &backed_up, &location, &volumes, &mut reporter).await;
                    let held = crate::hold::settle(&client, Some(spec.name.as_str()), &restored).await;
                    // A pod left held fails the restore as a claim would, named beside any damage.
                    let problems = [damage, held].into_iter().flatten().collect::<Vec<_>>();
                    Ok((restored, (!problems.is_empty()).then(|| problems.join("; "))))
                }
                Err(e) if !spec.dry_run => {
                    // Pods created held before the restore failed wait for nothing: say so.
                    // Its error is the restore's; a pod left held is logged by `settle`.
                    let _ = crate::hold::settle(&client, Some(spec.name.as_str()), &[]).await;
                    Err(e)
                }
                Ok((_, damage)) => Ok((Vec::new(), damage)),
                Err(e) => Err(e),
            };
            (outcome, Some(results))
        }
    };
    let mut status = RestoreStatus {
        started: Some(started),
        ..RestoreStatus::default()
    };
    if let Some(results) = results {
        status.counts = results.counts;
        status.problems = results.problems;
        status.item_parts = results.parts;
    }
    (status.phase, status.error) = match outcome {
        Err(e) => (Phase::Failed, Some(report(&e))),
        Ok((volumes, damage)) => {
            let failed =
                status.counts.failed > 0 || volumes.iter().any(|v| v.error.is_some()) || damage.is_some();
            status.volumes = volumes;
            if failed {
                (Phase::PartiallyFailed, damage)
            } else {
                (Phase::Completed, None)
            }
        }
    };
    status.finished = Some(Timestamp::now());
    tracing::info!(phase = %status.phase, items = status.counts.total(), failed = status.counts.failed, "restore ended");
    reporter
        .finish(Report::RestoreDone(spec.name.clone(), status))
        .await;
}

/// Every item's result, written to the location in parts as the restore goes; counts and
/// problems kept for the status.
struct Results {
    source: Arc<SealedStore>,
    restore: cairn_proto::model::RestoreName,
    buffer: Vec<ItemResult>,
    parts: Vec<String>,
    counts: OutcomeCounts,
    problems: Vec<ItemResult>,
}

impl Results {
    fn new(source: Arc<SealedStore>, spec: &RestoreSpec) -> Self {
        Self {
            source,
            restore: spec.name.clone(),
            buffer: Vec::new(),
            parts: Vec::new(),
            counts: OutcomeCounts::default(),
            problems: Vec::new(),
        }
    }

    async fn push(&mut self, result: ItemResult) -> Result<(), Error> {
        self.counts.add(result.outcome);
        let problem = matches!(
            result.outcome,
            Outcome::Failed | Outcome::SkippedExists | Outcome::SkippedSensitive
        );
        if problem && self.problems.len() < RestoreStatus::MAX_PROBLEMS {
            self.problems.push(result.clone());
        }
        self.buffer.push(result);
        if self.buffer.len() >= format::RESTORE_PART_ITEMS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let key =
            format::restore_items_part(&self.restore, u32::try_from(self.parts.len()).unwrap_or(u32::MAX));
        let results = std::mem::take(&mut self.buffer);
        self.source.write(&key, &results).await?;
        self.parts.push(key);
        Ok(())
    }
}

/// Restores what `spec` asks; returns the volumes the backup holds and, for a partial restore
/// of a damaged backup, what was damaged.
async fn execute(
    client: &kube::Client,
    spec: &RestoreSpec,
    source: &SealedStore,
    reporter: &mut Reporter,
    results: &mut Results,
) -> Result<(Vec<VolumeResult>, Option<String>), Error> {
    let keys = BackupKeys::new(&spec.backup);
    let Some(manifest) = source.read::<Manifest>(&keys.manifest()).await? else {
        return Err(Error::NoManifest {
            backup: spec.backup.to_string(),
            location: source.location().to_owned(),
        });
    };
    // Nothing changes in the cluster before the whole backup is known to be there as written.
    let damage = intact::check(source, &keys, &manifest).await?;
    let damaged = (!damage.is_empty()).then(|| intact::describe(&keys, &damage));
    if let Some(damaged) = &damaged {
        if !spec.partial {
            return Err(Error::Damaged {
                backup: spec.backup.to_string(),
                damage: damaged.clone(),
            });
        }
        tracing::warn!(damage = %damaged, "restoring what is intact of a damaged backup");
        for lost in intact::lost_items(source, &keys, &manifest, &damage, spec).await? {
            results.push(lost).await?;
        }
    }
    let resources = order::restore_order(&manifest.backup.status.resources);
    let total: u64 = resources.iter().map(|r| r.count).sum();
    let backed_up = manifest.backup.status.volumes;
    let guard = if spec.include_sensitive {
        None
    } else {
        Some(guard::Guard::of_target(client).await)
    };
    let hold = if backed_up.iter().any(|v| !v.snapshot.is_empty()) {
        let image = crate::hold::Image::discover(client).await;
        if image.is_none() {
            tracing::warn!(
                "the agent's image is unknown (CAIRN_POD_NAME, CAIRN_HOLD_IMAGE): restored pods are not held until their data is in"
            );
        }
        image.map(|i| (i, spec.name.to_string()))
    } else {
        None
    };
    let holds = hold.is_some();
    let mut preparer = Preparer::new(&backed_up, guard, hold);
    // A Deployment's pod is held only if its ReplicaSet comes with it, to adopt it: the
    // backup's ReplicaSets are read once before anything is made.
    if let Some(sets) = resources
        .iter()
        .find(|r| holds && r.group_kind() == GroupKind::REPLICA_SET)
    {
        for part in sets.parts.iter().filter(|p| !damage.contains_key(*p)) {
            let (key, objects) = open_part(source, &keys, part).await?;
            for object in objects {
                let object = object.map_err(|source| Error::Part {
                    key: key.clone(),
                    source,
                })?;
                if covers(spec, sets, &object) {
                    preparer.backed_up_set(&object);
                }
            }
        }
    }
    for resource in &resources {
        let kind = resource.group_kind();
        let target = resolve(client, resource, !spec.dry_run).await;
        for part in resource.parts.iter().filter(|p| !damage.contains_key(*p)) {
            let (key, mut objects) = open_part(source, &keys, part).await?;
            let part_error = |source| Error::Part {
                key: key.clone(),
                source,
            };
            let mut broken = None;
            // Objects are decoded, prepared and created as the stream pulls them: memory holds
            // one compressed part and the objects in flight, whatever the part's size.
            let work = std::iter::from_fn(|| {
                loop {
                    let object = match objects.next()? {
                        Ok(object) => object,
                        Err(e) => {
                            broken = Some(e);
                            return None;
                        }
                    };
                    if covers(spec, resource, &object) {
                        let item = item_ref(resource, &object, spec);
                        return Some((item, preparer.prepare(object, &kind, spec)));
                    }
                }
            });
            let mut applied = futures::stream::iter(work)
                .map(|(item, decision)| apply(client, &target, resource, spec, item, decision))
                .buffered(PARALLEL_CREATES);
            let current = format!("{}/{}", resource.group, resource.resource);
            while let Some(result) = applied.next().await {
                results.push(result).await?;
                reporter.progress(results.counts.total(), total, 0, &current);
            }
            drop(applied);
            if let Some(e) = broken {
                return Err(part_error(e));
            }
        }
    }
    Ok((backed_up, damaged))
}

/// Part `part` of the backup, opened: its key (which errors name) and its objects as they decode.
async fn open_part(
    source: &SealedStore,
    keys: &BackupKeys,
    part: &str,
) -> Result<(String, PartReader<std::io::Cursor<Vec<u8>>>), Error> {
    let key = keys.absolute(part);
    let bytes = source.must_read_bytes(ObjectKind::ObjectPart, &key).await?;
    match PartReader::new(std::io::Cursor::new(bytes)) {
        Ok(objects) => Ok((key, objects)),
        Err(source) => Err(Error::Part { key, source }),
    }
}

/// Whether the restore's namespace filter covers `object` (by its namespace in the backup; a
/// Namespace by its name; other cluster-scoped objects always).
fn covers(spec: &RestoreSpec, resource: &ResourceSummary, object: &Value) -> bool {
    let field = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default();
    if resource.namespaced {
        spec.namespaces.covers(field("/metadata/namespace"))
    } else if resource.group_kind() == GroupKind::NAMESPACE {
        spec.namespaces.covers(field("/metadata/name"))
    } else {
        true
    }
}

/// The item as it lands in the target (namespace mapped).
fn item_ref(resource: &ResourceSummary, object: &Value, spec: &RestoreSpec) -> ItemRef {
    let field = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut name = field("/metadata/name");
    if resource.group_kind() == GroupKind::NAMESPACE {
        name = spec.map_namespace(&name).to_owned();
    }
    ItemRef {
        group: resource.group.clone(),
        version: resource.version.clone(),
        kind: resource.kind.clone(),
        resource: resource.resource.clone(),
        namespace: spec.map_namespace(&field("/metadata/namespace")).to_owned(),
        name,
    }
}

/// How the target serves a backed-up type, or why it does not. A custom resource's kind may
/// appear only once its CRD, restored just before, is established: wait for it.
async fn resolve(
    client: &kube::Client,
    resource: &ResourceSummary,
    wait: bool,
) -> Result<(ApiResource, bool), String> {
    let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
    let deadline = Instant::now()
        + if wait && is_custom(resource) {
            CRD_READY
        } else {
            Duration::ZERO
        };
    loop {
        match discovery::pinned_kind(client, &gvk).await {
            Ok((api, caps)) => return Ok((api, caps.scope == Scope::Namespaced)),
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!(kind = %resource.group_kind(), error = %e, "kind not served by the target");
                return Err(format!(
                    "the target cluster does not serve {}/{} {}",
                    resource.group, resource.version, resource.kind
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Whether a type is a custom resource (its objects reference their CRD).
fn is_custom(resource: &ResourceSummary) -> bool {
    resource.depends_on.contains(&GroupKind::CRD)
}

fn result(item: ItemRef, outcome: Outcome, message: impl Into<String>) -> ItemResult {
    ItemResult {
        item,
        outcome,
        message: message.into(),
    }
}

async fn apply(
    client: &kube::Client,
    target: &Result<(ApiResource, bool), String>,
    resource: &ResourceSummary,
    spec: &RestoreSpec,
    item: ItemRef,
    decision: Decision,
) -> ItemResult {
    let object = match decision {
        Decision::LeftToController(why) => return result(item, Outcome::LeftToController, why),
        Decision::Sensitive(why) => {
            return result(
                item,
                Outcome::SkippedSensitive,
                format!("{why}: restore it with --include-sensitive"),
            );
        }
        Decision::Restore(object) => object,
    };
    let (api_resource, namespaced) = match target {
        Ok(t) => t,
        // A dry run creates no CRD, so its custom resources' kind is not served yet.
        Err(_) if spec.dry_run && is_custom(resource) => {
            return result(
                item,
                Outcome::WouldCreate,
                "once its CustomResourceDefinition is established",
            );
        }
        Err(why) => return result(item, Outcome::Failed, why.clone()),
    };
    let api: Api<DynamicObject> = if *namespaced {
        Api::namespaced_with(client.clone(), &item.namespace, api_resource)
    } else {
        Api::all_with(client.clone(), api_resource)
    };
    let object: DynamicObject = match serde_json::from_value(object) {
        Ok(o) => o,
        Err(e) => {
            return result(
                item,
                Outcome::Failed,
                format!("malformed object in the backup: {e}"),
            );
        }
    };
    let outcome = if spec.dry_run {
        dry_run(&api, &item, spec.existing_policy).await
    } else {
        create(&api, &item, object, spec.existing_policy).await
    };
    if !spec.dry_run && resource.group_kind() == GroupKind::CRD && outcome.outcome != Outcome::Failed {
        return established(client, outcome).await;
    }
    outcome
}

async fn dry_run(api: &Api<DynamicObject>, item: &ItemRef, policy: ExistingPolicy) -> ItemResult {
    match (api.get_opt(&item.name).await, policy) {
        (Ok(None), _) => result(item.clone(), Outcome::WouldCreate, ""),
        (Ok(Some(_)), ExistingPolicy::Skip) => result(
            item.clone(),
            Outcome::SkippedExists,
            "exists in the target; would be left as it is",
        ),
        (Ok(Some(_)), ExistingPolicy::Update) => result(
            item.clone(),
            Outcome::Updated,
            "exists in the target; would be overwritten",
        ),
        (Err(e), _) => result(item.clone(), Outcome::Failed, crate::kube_error(&e)),
    }
}

async fn create(
    api: &Api<DynamicObject>,
    item: &ItemRef,
    object: DynamicObject,
    policy: ExistingPolicy,
) -> ItemResult {
    let params = PostParams {
        field_manager: Some("cairn".into()),
        ..PostParams::default()
    };
    let deadline = Instant::now() + ACCOUNT_WAIT;
    loop {
        return match api.create(&params, &object).await {
            Ok(_) => result(item.clone(), Outcome::Created, ""),
            Err(kube::Error::Api(status)) if status.code == 409 => match policy {
                ExistingPolicy::Skip => result(
                    item.clone(),
                    Outcome::SkippedExists,
                    "exists in the target; left as it is (--existing-policy update overwrites it)",
                ),
                ExistingPolicy::Update => update(api, item, object, &params).await,
            },
            Err(kube::Error::Api(status)) if item.kind == "Pod" && awaits_account(&status) => {
                if Instant::now() >= deadline {
                    let why = format!(
                        "{} (waited {ACCOUNT_WAIT:?} for the namespace's service account)",
                        status.message
                    );
                    return result(item.clone(), Outcome::Failed, why);
                }
                tracing::debug!(pod = %item.name, namespace = %item.namespace, reason = %status.message, "waiting for the namespace's service account");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Err(e) => result(item.clone(), Outcome::Failed, crate::kube_error(&e)),
        };
    }
}

/// Whether the API server refused a pod only because its namespace's service account is not
/// ready yet: the target's service-account controller makes a `default` account in every new
/// namespace a moment after the namespace (longer on a busy cluster), and, before Kubernetes 1.24,
/// its token controller then gives it a token Secret, until which the server asks to come back
/// (`ServerTimeout`). Restore leaves a plain `default` account to those controllers
/// ([`rules`]), so it waits for them rather than fail the pod.
fn awaits_account(status: &kube::core::Status) -> bool {
    status.reason == "ServerTimeout"
        || status.message.contains("error looking up service account")
            && status.message.contains(r#"serviceaccount "default" not found"#)
}

async fn update(
    api: &Api<DynamicObject>,
    item: &ItemRef,
    object: DynamicObject,
    params: &PostParams,
) -> ItemResult {
    let current = match api.get(&item.name).await {
        Ok(c) => c,
        Err(e) => return result(item.clone(), Outcome::Failed, crate::kube_error(&e)),
    };
    let (Ok(live), Ok(mut wanted)) = (serde_json::to_value(&current), serde_json::to_value(&object)) else {
        return result(item.clone(), Outcome::Failed, "cannot encode the object");
    };
    prepare::carry_over(&live, &mut wanted, &item.group_kind());
    let mut object: DynamicObject = match serde_json::from_value(wanted) {
        Ok(o) => o,
        Err(e) => {
            return result(
                item.clone(),
                Outcome::Failed,
                format!("cannot encode the object: {e}"),
            );
        }
    };
    object.metadata.resource_version = current.metadata.resource_version;
    match api.replace(&item.name, params, &object).await {
        Ok(_) => result(item.clone(), Outcome::Updated, ""),
        Err(e) => result(item.clone(), Outcome::Failed, crate::kube_error(&e)),
    }
}

/// Waits until a restored CRD is Established, so its custom resources can follow. A watch that
/// fails (the API server busy, say) is started again until [`CRD_READY`] has passed.
async fn established(client: &kube::Client, created: ItemResult) -> ItemResult {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = created.item.name.clone();
    let wait = async {
        loop {
            match await_condition(crds.clone(), &name, conditions::is_crd_established()).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::debug!(crd = %name, error = %report(&e), "watching for Established");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    };
    match tokio::time::timeout(CRD_READY, wait).await {
        Ok(()) => created,
        Err(_) => result(
            created.item,
            Outcome::Failed,
            format!("not Established within {CRD_READY:?}"),
        ),
    }
}
