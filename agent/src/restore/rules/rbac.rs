//! Role bindings. Their ServiceAccount subjects follow namespace mapping, like the accounts.

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::Value;

use super::{Known, Rule, map_namespace};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::ROLE_BINDING, GroupKind::CLUSTER_ROLE_BINDING];

/// RoleBindings and ClusterRoleBindings.
pub struct Bindings;

impl Rule for Bindings {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// Maps the subjects' namespaces.
    fn clean(&self, _kind: &GroupKind, object: &mut Value, _known: &Known, spec: &RestoreSpec) {
        if let Some(Value::Array(subjects)) = object.pointer_mut("/subjects") {
            for subject in subjects {
                map_namespace(subject, "/namespace", spec);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use serde_json::json;

    #[test]
    fn subjects_follow_namespace_mapping() {
        let mut crb = json!({"metadata": {"name": "robots"}, "subjects": [
            {"kind": "ServiceAccount", "name": "robot", "namespace": "app"},
            {"kind": "ServiceAccount", "name": "other", "namespace": "ops"},
            {"kind": "Group", "name": "admins"}]});
        Bindings.clean(
            &GroupKind::CLUSTER_ROLE_BINDING,
            &mut crb,
            &Known::default(),
            &spec(&[("app", "copy")], false),
        );
        assert_eq!(
            crb.pointer("/subjects"),
            Some(&json!([
                {"kind": "ServiceAccount", "name": "robot", "namespace": "copy"},
                {"kind": "ServiceAccount", "name": "other", "namespace": "ops"},
                {"kind": "Group", "name": "admins"}]))
        );
    }
}
