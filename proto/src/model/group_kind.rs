//! A type's API group and kind as one value: what references, restore order and restore rules
//! name. Its text form, `group/Kind` (`/Kind` for the core group), is what the manifest's
//! `depends_on` stores.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// An API group and kind: `apps/Deployment`, `/Namespace` (core).
///
/// Neither part holds a `/`, so the pair and its text form are equal together, and ordered
/// alike: [`Ord`] compares the text form, the order restore has always broken ties in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupKind {
    group: Cow<'static, str>,
    kind: Cow<'static, str>,
}

/// Text that is not `group/Kind`.
#[derive(Debug, thiserror::Error)]
#[error("invalid kind {text:?}: expected group/Kind, or /Kind for the core group")]
pub struct InvalidGroupKind {
    text: String,
}

impl GroupKind {
    /// Namespaces.
    pub const NAMESPACE: Self = Self::core("Namespace");
    /// CustomResourceDefinitions.
    pub const CRD: Self = Self::from_static("apiextensions.k8s.io", "CustomResourceDefinition");
    /// PersistentVolumes.
    pub const PERSISTENT_VOLUME: Self = Self::core("PersistentVolume");
    /// PersistentVolumeClaims.
    pub const PERSISTENT_VOLUME_CLAIM: Self = Self::core("PersistentVolumeClaim");
    /// StorageClasses.
    pub const STORAGE_CLASS: Self = Self::from_static("storage.k8s.io", "StorageClass");
    /// ServiceAccounts.
    pub const SERVICE_ACCOUNT: Self = Self::core("ServiceAccount");
    /// Services.
    pub const SERVICE: Self = Self::core("Service");
    /// Endpoints (core).
    pub const ENDPOINTS: Self = Self::core("Endpoints");
    /// EndpointSlices.
    pub const ENDPOINT_SLICE: Self = Self::from_static("discovery.k8s.io", "EndpointSlice");
    /// Secrets.
    pub const SECRET: Self = Self::core("Secret");
    /// ConfigMaps.
    pub const CONFIG_MAP: Self = Self::core("ConfigMap");
    /// Pods.
    pub const POD: Self = Self::core("Pod");
    /// Jobs.
    pub const JOB: Self = Self::from_static("batch", "Job");
    /// Deployments.
    pub const DEPLOYMENT: Self = Self::from_static("apps", "Deployment");
    /// ReplicaSets.
    pub const REPLICA_SET: Self = Self::from_static("apps", "ReplicaSet");
    /// StatefulSets.
    pub const STATEFUL_SET: Self = Self::from_static("apps", "StatefulSet");
    /// Roles.
    pub const ROLE: Self = Self::from_static("rbac.authorization.k8s.io", "Role");
    /// ClusterRoles.
    pub const CLUSTER_ROLE: Self = Self::from_static("rbac.authorization.k8s.io", "ClusterRole");
    /// RoleBindings.
    pub const ROLE_BINDING: Self = Self::from_static("rbac.authorization.k8s.io", "RoleBinding");
    /// ClusterRoleBindings.
    pub const CLUSTER_ROLE_BINDING: Self =
        Self::from_static("rbac.authorization.k8s.io", "ClusterRoleBinding");
    /// Ingresses (networking.k8s.io).
    pub const INGRESS: Self = Self::from_static("networking.k8s.io", "Ingress");
    /// Ingresses of the older `extensions` group.
    pub const EXTENSIONS_INGRESS: Self = Self::from_static("extensions", "Ingress");

    /// A kind of the core group, for constants.
    pub const fn core(kind: &'static str) -> Self {
        Self::from_static("", kind)
    }

    /// A group and kind known at compile time, for constants.
    pub const fn from_static(group: &'static str, kind: &'static str) -> Self {
        Self {
            group: Cow::Borrowed(group),
            kind: Cow::Borrowed(kind),
        }
    }

    /// A group and kind as the API server names them (`""` for the core group).
    pub fn new(group: impl Into<Cow<'static, str>>, kind: impl Into<Cow<'static, str>>) -> Self {
        Self {
            group: group.into(),
            kind: kind.into(),
        }
    }

    /// The API group, `""` for core.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The text form's bytes, without building it.
    fn text_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.group
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(self.kind.bytes())
    }
}

impl Ord for GroupKind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text_bytes().cmp(other.text_bytes())
    }
}

impl PartialOrd for GroupKind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for GroupKind {
    /// `group/Kind`, `/Kind` for core.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.kind)
    }
}

impl std::str::FromStr for GroupKind {
    type Err = InvalidGroupKind;

    /// `group/Kind`, `/Kind` for core; the kind may not be empty.
    fn from_str(text: &str) -> Result<Self, InvalidGroupKind> {
        match text.split_once('/') {
            Some((group, kind)) if !kind.is_empty() && !kind.contains('/') => {
                Ok(Self::new(group.to_owned(), kind.to_owned()))
            }
            _ => Err(InvalidGroupKind {
                text: text.to_owned(),
            }),
        }
    }
}

impl TryFrom<String> for GroupKind {
    type Error = InvalidGroupKind;
    fn try_from(text: String) -> Result<Self, InvalidGroupKind> {
        text.parse()
    }
}

impl From<GroupKind> for String {
    fn from(gk: GroupKind) -> String {
        gk.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_the_text_form() {
        assert_eq!(GroupKind::NAMESPACE.to_string(), "/Namespace");
        assert_eq!(
            GroupKind::CRD.to_string(),
            "apiextensions.k8s.io/CustomResourceDefinition"
        );
        for text in ["apps/Deployment", "/Namespace", "example.com/Widget"] {
            let gk: GroupKind = text.parse().expect("valid");
            assert_eq!(gk.to_string(), text);
        }
        let parsed: GroupKind = "/Namespace".parse().expect("valid");
        assert_eq!(parsed, GroupKind::NAMESPACE);
        assert_eq!((parsed.group(), parsed.kind()), ("", "Namespace"));
        assert_eq!(
            GroupKind::new("apps", "Deployment"),
            GroupKind::from_static("apps", "Deployment")
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in ["", "Namespace", "apps/", "/", "a/b/C"] {
            assert!(text.parse::<GroupKind>().is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn orders_by_the_text_form() {
        // `-` sorts before `/`: the text form puts `a-b/X` first, a pair-wise order would not.
        let mut kinds = [GroupKind::new("a", "Y"), GroupKind::new("a-b", "X")];
        kinds.sort();
        assert_eq!(kinds.map(|k| k.to_string()), ["a-b/X", "a/Y"]);
    }

    #[test]
    fn serialises_as_the_text_form() {
        let json = serde_json::to_string(&GroupKind::SERVICE).expect("encodes");
        assert_eq!(json, "\"/Service\"");
        let back: GroupKind = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, GroupKind::SERVICE);
        assert!(serde_json::from_str::<GroupKind>("\"Service\"").is_err());
    }
}
