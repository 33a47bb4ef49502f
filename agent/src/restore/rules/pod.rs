//! Pods. A bare pod (one no controller owns) is scheduled afresh in the target.

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::Value;

use super::{Known, Rule, remove};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::POD];

/// Pods.
pub struct Pods;

impl Rule for Pods {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// Drops the node the pod ran on: the target's scheduler picks one.
    fn clean(&self, _kind: &GroupKind, object: &mut Value, _known: &Known, _spec: &RestoreSpec) {
        remove(object, "/spec", &["nodeName"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use serde_json::json;

    #[test]
    fn a_pod_is_scheduled_afresh() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-1", "containers": []}});
        Pods.clean(&GroupKind::POD, &mut pod, &Known::default(), &spec(&[], false));
        assert_eq!(
            pod,
            json!({"metadata": {"name": "p"}, "spec": {"containers": []}})
        );
    }
}
