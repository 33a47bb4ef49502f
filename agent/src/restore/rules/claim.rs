//! Claims and their volumes. A claim whose data the backup holds gets a new volume from its
//! provisioner (Cairn writes the data into it), so its old PersistentVolume is not restored and
//! the claim forgets it; other claims and volumes are restored bound to each other, for the PV
//! controller to bind afresh.

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::Value;

use super::{Known, Rule, id, keep, map_namespace, remove};

/// Annotations the PV controller sets on bound claims; dropping them lets it bind afresh.
const BIND_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
];

/// Annotations naming the provisioner or node of a claim's old volume: a claim whose data Cairn
/// restores is provisioned afresh.
const PROVISIONING_ANNOTATIONS: &[&str] = &[
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::PERSISTENT_VOLUME_CLAIM, GroupKind::PERSISTENT_VOLUME];

/// PersistentVolumeClaims and PersistentVolumes.
pub struct Claims;

impl Rule for Claims {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// A volume whose claim's data is in the backup is left to the claim's provisioner.
    fn decide(&self, kind: &GroupKind, object: &Value, known: &mut Known) -> Option<String> {
        let (_, name) = id(object);
        (*kind == GroupKind::PERSISTENT_VOLUME && known.volumes_with_data.contains(&name)).then(|| {
            "its claim's data is in the backup: the claim gets a new volume from its provisioner, and Cairn writes the data into it".into()
        })
    }

    /// A volume's claim reference loses the old claim's uid and follows namespace mapping; a
    /// claim loses its binding annotations, and, when its data is in the backup, its old volume
    /// and provisioner.
    fn clean(&self, kind: &GroupKind, object: &mut Value, known: &Known, spec: &RestoreSpec) {
        if *kind == GroupKind::PERSISTENT_VOLUME {
            remove(object, "/spec/claimRef", &["uid", "resourceVersion"]);
            map_namespace(object, "/spec/claimRef/namespace", spec);
        } else {
            remove(object, "/metadata/annotations", BIND_ANNOTATIONS);
            if known.claims_with_data.contains(&id(object)) {
                remove(object, "/spec", &["volumeName"]);
                remove(object, "/metadata/annotations", PROVISIONING_ANNOTATIONS);
            }
        }
    }

    /// An existing claim keeps the volume it is bound to.
    fn carry_over(&self, kind: &GroupKind, current: &Value, object: &mut Value) {
        if *kind == GroupKind::PERSISTENT_VOLUME_CLAIM {
            keep(current, object, "/spec/volumeName");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use cairn_proto::model::VolumeResult;
    use serde_json::json;

    fn with_data() -> Known {
        Known::new(
            &[VolumeResult {
                namespace: "app".into(),
                claim: "data".into(),
                volume: "pv-1".into(),
                snapshot: "s".into(),
                ..VolumeResult::default()
            }],
            None,
        )
    }

    fn claim(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "app", "annotations": {
                "pv.kubernetes.io/bind-completed": "yes",
                "volume.kubernetes.io/selected-node": "node-1", "team": "a"}},
               "spec": {"volumeName": format!("pv-{name}")}})
    }

    #[test]
    fn a_volume_with_data_is_left_to_the_provisioner() {
        let mut known = with_data();
        let pv = |name: &str| json!({"metadata": {"name": name}});
        assert!(
            Claims
                .decide(&GroupKind::PERSISTENT_VOLUME, &pv("pv-1"), &mut known)
                .is_some()
        );
        assert_eq!(
            Claims.decide(&GroupKind::PERSISTENT_VOLUME, &pv("pv-2"), &mut known),
            None
        );
        assert_eq!(
            Claims.decide(&GroupKind::PERSISTENT_VOLUME_CLAIM, &claim("data"), &mut known),
            None
        );
    }

    #[test]
    fn a_claim_with_data_forgets_its_volume_and_provisioner() {
        let (known, spec) = (with_data(), spec(&[], false));
        let mut data = claim("data");
        Claims.clean(&GroupKind::PERSISTENT_VOLUME_CLAIM, &mut data, &known, &spec);
        assert_eq!(
            data,
            json!({"metadata": {"name": "data", "namespace": "app", "annotations": {"team": "a"}}, "spec": {}})
        );
        let mut other = claim("logs");
        Claims.clean(&GroupKind::PERSISTENT_VOLUME_CLAIM, &mut other, &known, &spec);
        assert_eq!(
            other,
            json!({"metadata": {"name": "logs", "namespace": "app", "annotations": {
                    "volume.kubernetes.io/selected-node": "node-1", "team": "a"}},
                   "spec": {"volumeName": "pv-logs"}})
        );
    }

    #[test]
    fn a_volume_points_to_its_claim_by_name_in_the_mapped_namespace() {
        let mut pv = json!({"metadata": {"name": "pv-2"},
            "spec": {"claimRef": {"name": "logs", "namespace": "app", "uid": "u", "resourceVersion": "7"}}});
        Claims.clean(
            &GroupKind::PERSISTENT_VOLUME,
            &mut pv,
            &Known::default(),
            &spec(&[("app", "copy")], false),
        );
        assert_eq!(
            pv,
            json!({"metadata": {"name": "pv-2"}, "spec": {"claimRef": {"name": "logs", "namespace": "copy"}}})
        );
    }

    #[test]
    fn an_update_keeps_the_bound_volume() {
        let live = json!({"spec": {"volumeName": "pv-9"}});
        let mut restored = json!({"spec": {}});
        Claims.carry_over(&GroupKind::PERSISTENT_VOLUME_CLAIM, &live, &mut restored);
        assert_eq!(restored, live);
    }
}
