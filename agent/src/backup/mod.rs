//! Backing up a cluster's resources: discover what it serves, list each selected type page by
//! page, write objects into parts as they come (memory does not grow with the cluster), record
//! every item in the index and, last, the manifest.

pub mod select;
mod writer;

use cairn_proto::format::{self, BackupKeys, ObjectSeal, SealedStore};
use cairn_proto::model::{
    Backup, BackupSpec, BackupStatus, ClusterResources, GroupKind, ItemRef, ItemResult, Location, Manifest,
    Outcome, Phase, Report, ResourceKeys, ResourceSummary, Timestamp,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use std::collections::{BTreeSet, HashSet};

use cairn_proto::error_chain as report;

use crate::claims::{self, Claim};
use crate::discover::{self, Resource};
use crate::references::{self, Reference};
use crate::relay::Volumes;
use crate::report::Reporter;
use writer::{Parts, Writer};

/// Objects per list page: bounds the agent's memory whatever the cluster's size.
const PAGE_SIZE: u32 = 500;
/// Up to this many included namespaces, each type is listed namespace by namespace.
const PER_NAMESPACE_LISTS: usize = 3;

/// A failure that ends a backup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster's API could not be discovered.
    #[error("discovering the cluster's resources")]
    Discover(#[source] kube::Error),
    /// The namespaces could not be listed.
    #[error("listing namespaces")]
    Namespaces(#[source] kube::Error),
    /// The location could not be opened.
    #[error(transparent)]
    Location(#[from] format::location::Error),
    /// An object could not be written.
    #[error(transparent)]
    Store(#[from] format::sealed_store::Error),
    /// A part could not be encoded.
    #[error("encoding an object part")]
    Encode(#[source] std::io::Error),
    /// The location's keys are malformed.
    #[error("sealing with the location's keys")]
    Seal(#[source] cairn_proto::seal::Error),
}

/// What a backup is working with.
struct Run<'a> {
    client: kube::Client,
    spec: &'a BackupSpec,
    writer: Writer,
    reporter: Reporter,
    /// Custom resource types, as `plural.group`: their CRD is `plural.group` too.
    crds: HashSet<String>,
    /// Namespaces in scope (exist, and pass the filter).
    namespaces: BTreeSet<String>,
    /// Cluster-scoped objects the selected namespaced ones need (`auto`).
    needed: BTreeSet<Reference>,
    /// Namespaces that hold at least one selected object.
    used_namespaces: BTreeSet<String>,
    resources: Vec<ResourceSummary>,
    problems: Vec<ItemResult>,
    items: u64,
    /// Claims selected, for `volumes`.
    claims: Vec<Claim>,
}

/// Runs backup `spec` of the cluster behind `client` into `location`, its objects sealed under
/// `resources` (the workspace's resource key); reports progress and the
/// result. Never panics on cluster or storage errors: they end up in the status.
#[tracing::instrument(name = "backup", skip_all, fields(backup.id = %spec.name, cluster = %spec.cluster))]
pub async fn run(
    client: kube::Client,
    spec: BackupSpec,
    (location, resources): (Location, ResourceKeys),
    mut reporter: Reporter,
    volumes: Volumes,
    kubernetes_version: String,
) {
    reporter.started().await;
    let started = Timestamp::now();
    let name = spec.name.clone();
    let (status, reporter) = match execute(
        client,
        &spec,
        (&location, &resources),
        reporter,
        &volumes,
        started,
        &kubernetes_version,
    )
    .await
    {
        Ok(done) => done,
        Err((e, reporter)) => {
            let error = report(&e);
            tracing::error!(error = %error, "backup failed");
            let status = BackupStatus {
                phase: Phase::Failed,
                started: Some(started),
                finished: Some(Timestamp::now()),
                error: Some(error),
                agent_version: crate::VERSION.into(),
                kubernetes_version,
                ..BackupStatus::default()
            };
            (status, reporter)
        }
    };
    tracing::info!(phase = %status.phase, items = status.items, bytes = status.bytes, "backup ended");
    reporter.finish(Report::BackupDone(name, status)).await;
}

async fn execute(
    client: kube::Client,
    spec: &BackupSpec,
    (location, resources): (&Location, &ResourceKeys),
    reporter: Reporter,
    volumes: &Volumes,
    started: Timestamp,
    kubernetes_version: &str,
) -> Result<(BackupStatus, Reporter), (Error, Reporter)> {
    let store = match format::open_location(location) {
        Ok(store) => store,
        Err(e) => return Err((e.into(), reporter)),
    };
    let seal = match ObjectSeal::new(resources) {
        Ok(seal) => seal,
        Err(e) => return Err((Error::Seal(e), reporter)),
    };
    let writer = Writer::new(
        SealedStore::new(store, &location.name, seal),
        BackupKeys::new(&spec.name),
    );
    let mut run = Run {
        client,
        spec,
        writer,
        reporter,
        crds: HashSet::new(),
        namespaces: BTreeSet::new(),
        needed: BTreeSet::new(),
        used_namespaces: BTreeSet::new(),
        resources: Vec::new(),
        problems: Vec::new(),
        items: 0,
        claims: Vec::new(),
    };
    match run.all().await {
        Ok(()) => {}
        Err(e) => return Err((e, run.reporter)),
    }
    let claims = std::mem::take(&mut run.claims);
    let volume_results = if spec.volumes {
        claims::back_up(&run.client, spec, location, volumes, claims, &mut run.reporter).await
    } else {
        Vec::new()
    };
    let failed = run.problems.iter().any(|p| p.outcome == Outcome::Failed)
        || volume_results.iter().any(|v| v.error.is_some());
    let mut status = BackupStatus {
        phase: if failed {
            Phase::PartiallyFailed
        } else {
            Phase::Completed
        },
        started: Some(started),
        finished: None,
        items: run.items,
        bytes: 0,
        resources: run.resources,
        problems: run.problems,
        error: None,
        agent_version: crate::VERSION.into(),
        kubernetes_version: kubernetes_version.to_owned(),
        volumes: volume_results,
        spooled: false,
    };
    status.finished = Some(Timestamp::now());
    let manifest = Manifest {
        backup: Backup {
            spec: spec.clone(),
            status,
        },
        index: Vec::new(),
        objects: Vec::new(),
    };
    match run.writer.finish(manifest).await {
        Ok(written) => Ok((written.backup.status, run.reporter)),
        Err(e) => Err((e, run.reporter)),
    }
}

impl Run<'_> {
    async fn all(&mut self) -> Result<(), Error> {
        let resources = discover::resources(&self.client).await.map_err(Error::Discover)?;
        let (include, exclude) = (&self.spec.include_resources, &self.spec.exclude_resources);
        let selected: Vec<Resource> = resources
            .into_iter()
            .filter(|r| match (r.namespaced, self.spec.cluster_resources) {
                (true, _) | (false, ClusterResources::Always) => select::is_selected(include, exclude, r),
                // What selected objects need comes along unless its type is excluded by name.
                (false, ClusterResources::Auto) => select::is_selected(&[], exclude, r),
                (false, ClusterResources::Never) => false,
            })
            .collect();
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        if let Ok(list) = crds.list(&ListParams::default()).await {
            self.crds = list.items.into_iter().filter_map(|c| c.metadata.name).collect();
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let all = namespaces
            .list(&ListParams::default())
            .await
            .map_err(Error::Namespaces)?;
        self.namespaces = all
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .filter(|n| self.spec.namespaces.covers(n))
            .collect();

        // Namespaced types first: in `auto` mode they decide which cluster-scoped objects go along.
        for resource in selected.iter().filter(|r| r.namespaced) {
            self.resource_type(resource).await?;
        }
        for resource in selected.iter().filter(|r| !r.namespaced) {
            self.resource_type(resource).await?;
        }
        Ok(())
    }

    /// Lists and writes every selected object of one type.
    async fn resource_type(&mut self, resource: &Resource) -> Result<(), Error> {
        let api = &resource.api;
        let group_kind = GroupKind::new(api.group.clone(), api.kind.clone());
        let crd = Some(resource.qualified()).filter(|q| self.crds.contains(q));
        let mut parts = Parts::new(&api.group, &api.version, &api.plural)?;
        let mut depends_on = BTreeSet::new();
        let mut count = 0u64;
        let only: Option<BTreeSet<String>> = self.cluster_scoped_filter(resource, &group_kind);
        // A few included namespaces: list each (fewer bytes, and namespace-scoped RBAC suffices).
        // More: one cluster-wide list per type, filtered here, costs far fewer requests.
        let per_namespace =
            !self.spec.namespaces.include.is_empty() && self.namespaces.len() <= PER_NAMESPACE_LISTS;
        let scopes: Vec<Option<String>> = if resource.namespaced && per_namespace {
            self.namespaces.iter().cloned().map(Some).collect()
        } else {
            vec![None]
        };
        for scope in scopes {
            let list_api: Api<DynamicObject> = match &scope {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, api),
                None => Api::all_with(self.client.clone(), api),
            };
            let mut params = ListParams::default().limit(PAGE_SIZE);
            // The label selector picks namespaced objects; cluster-scoped ones in `auto` mode are
            // picked by need, whatever their labels.
            if let Some(selector) = &self.spec.selector
                && (resource.namespaced || self.spec.cluster_resources == ClusterResources::Always)
            {
                params = params.labels(selector.as_str());
            }
            loop {
                let page = match list_api.list(&params).await {
                    Ok(page) => page,
                    Err(e) => {
                        self.list_failed(resource, scope.as_deref(), &e);
                        break;
                    }
                };
                for mut object in page.items {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    let namespace = object.metadata.namespace.clone().unwrap_or_default();
                    if resource.namespaced && !self.namespaces.contains(&namespace) {
                        continue;
                    }
                    if only.as_ref().is_some_and(|only| !only.contains(&name)) {
                        continue;
                    }
                    object.types = Some(kube::api::TypeMeta {
                        api_version: api.api_version.clone(),
                        kind: api.kind.clone(),
                    });
                    let mut value = serde_json::to_value(&object).map_err(|e| Error::Encode(e.into()))?;
                    if group_kind == GroupKind::POD {
                        crate::hold::strip(&mut value); // a restore's hold is no part of the pod
                    }
                    for r in references::of(&value, &group_kind, crd.as_deref()) {
                        if r.group_kind != group_kind {
                            depends_on.insert(r.group_kind.clone());
                        }
                        if r.namespace.is_none() && references::is_cluster_scoped(&r.group_kind) {
                            self.needed.insert(r);
                        }
                    }
                    if resource.namespaced {
                        self.used_namespaces.insert(namespace.clone());
                    }
                    if group_kind == GroupKind::PERSISTENT_VOLUME_CLAIM {
                        self.claims.push(Claim {
                            namespace: namespace.clone(),
                            name: name.clone(),
                            volume: value
                                .pointer("/spec/volumeName")
                                .and_then(serde_json::Value::as_str)
                                .filter(|v| !v.is_empty())
                                .map(str::to_owned),
                        });
                    }
                    let item = ItemRef {
                        group: api.group.clone(),
                        version: api.version.clone(),
                        kind: api.kind.clone(),
                        resource: api.plural.clone(),
                        namespace,
                        name,
                    };
                    let key = parts.current_key();
                    parts.push(&mut self.writer, &value).await?;
                    self.writer.index(item, &key).await?;
                    count += 1;
                    self.items += 1;
                    self.reporter
                        .progress(self.items, 0, self.writer.bytes, &resource.qualified());
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
        parts.flush(&mut self.writer).await?;
        if count > 0 {
            self.resources.push(ResourceSummary {
                group: api.group.clone(),
                version: api.version.clone(),
                kind: api.kind.clone(),
                resource: api.plural.clone(),
                namespaced: resource.namespaced,
                count,
                parts: parts.written,
                depends_on: depends_on.into_iter().collect(),
            });
        }
        Ok(())
    }

    /// For a cluster-scoped type in `auto` mode, the names to take; `None` means all.
    fn cluster_scoped_filter(&self, resource: &Resource, group_kind: &GroupKind) -> Option<BTreeSet<String>> {
        if resource.namespaced {
            return None;
        }
        if *group_kind == GroupKind::NAMESPACE {
            // Namespaces in scope; with a selector, only those holding a selected object.
            let chosen = if self.spec.selector.is_some() {
                &self.used_namespaces
            } else {
                &self.namespaces
            };
            return Some(chosen.clone());
        }
        match self.spec.cluster_resources {
            ClusterResources::Always => None,
            ClusterResources::Never => Some(BTreeSet::new()),
            ClusterResources::Auto => Some(
                self.needed
                    .iter()
                    .filter(|r| r.group_kind == *group_kind)
                    .map(|r| r.name.clone())
                    .collect(),
            ),
        }
    }

    fn list_failed(&mut self, resource: &Resource, namespace: Option<&str>, e: &kube::Error) {
        tracing::warn!(resource = %resource.qualified(), error = %e, "listing failed");
        let api = &resource.api;
        self.problems.push(ItemResult {
            item: ItemRef {
                group: api.group.clone(),
                version: api.version.clone(),
                kind: api.kind.clone(),
                resource: api.plural.clone(),
                namespace: namespace.unwrap_or_default().to_owned(),
                name: "*".into(),
            },
            outcome: Outcome::Failed,
            message: format!("listing {}: {}", resource.qualified(), crate::kube_error(e)),
        });
    }
}
