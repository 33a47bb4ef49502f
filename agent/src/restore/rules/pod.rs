//! Pods. A bare pod (one no controller owns) is scheduled afresh in the target; one that mounts
//! claims with data is held until the data is in.

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

    /// Drops the node the pod ran on: the target's scheduler picks one. A pod that mounts claims
    /// with data is held until the data is in ([`crate::hold`]).
    fn clean(&self, _kind: &GroupKind, object: &mut Value, known: &Known, _spec: &RestoreSpec) {
        remove(object, "/spec", &["nodeName"]);
        let claims = known.held_claims(object);
        if let Some((image, restore)) = known.hold.as_ref().filter(|_| !claims.is_empty()) {
            crate::hold::inject(object, image, restore, &claims);
        }
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
