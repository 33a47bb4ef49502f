//! ServiceAccounts. The target's service-account controller makes a `default` account in every
//! namespace and its token controller issues the tokens: restore leaves a plain `default` to it
//! and drops the references to the source's token Secrets.

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::{Map, Value};

use super::{Known, Rule, keep, str_at};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::SERVICE_ACCOUNT];

/// ServiceAccounts.
pub struct ServiceAccounts;

impl Rule for ServiceAccounts {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// A `default` account is the controller's, unless it was customised.
    fn decide(&self, _kind: &GroupKind, object: &Value, _known: &mut Known) -> Option<String> {
        (str_at(object, "/metadata/name") == "default" && !customised_default_account(object))
            .then(|| "created in every namespace by the target's service-account controller".into())
    }

    /// Drops references to the source's token Secrets: the target's token controller adds its own.
    fn clean(&self, _kind: &GroupKind, object: &mut Value, _known: &Known, _spec: &RestoreSpec) {
        let prefix = format!("{}-token-", str_at(object, "/metadata/name"));
        if let Some(Value::Array(secrets)) = object.pointer_mut("/secrets") {
            secrets.retain(|s| {
                !s.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with(&prefix))
            });
        }
    }

    /// An existing account keeps its secrets (the target's tokens among them), unless the backup
    /// lists some.
    fn carry_over(&self, _kind: &GroupKind, current: &Value, object: &mut Value) {
        keep(current, object, "/secrets");
    }
}

/// Whether a `default` ServiceAccount carries more than the controller gives it (pull secrets,
/// labels, annotations, a token-mount setting): then it is restored like any other object.
fn customised_default_account(object: &Value) -> bool {
    let has = |p: &str| {
        object
            .pointer(p)
            .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]) && v != &Value::Object(Map::new()))
    };
    has("/imagePullSecrets")
        || has("/automountServiceAccountToken")
        || has("/metadata/labels")
        || has("/metadata/annotations")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use serde_json::json;

    #[test]
    fn a_plain_default_account_is_left_to_the_controller() {
        let mut known = Known::default();
        let plain = json!({"metadata": {"name": "default", "namespace": "app"}, "secrets": [{"name": "default-token-x"}]});
        assert!(
            ServiceAccounts
                .decide(&GroupKind::SERVICE_ACCOUNT, &plain, &mut known)
                .is_some()
        );
        let pulls = json!({"metadata": {"name": "default", "namespace": "app"}, "imagePullSecrets": [{"name": "registry"}]});
        assert_eq!(
            ServiceAccounts.decide(&GroupKind::SERVICE_ACCOUNT, &pulls, &mut known),
            None
        );
        let robot = json!({"metadata": {"name": "robot", "namespace": "app"}});
        assert_eq!(
            ServiceAccounts.decide(&GroupKind::SERVICE_ACCOUNT, &robot, &mut known),
            None
        );
    }

    #[test]
    fn token_references_are_dropped_and_kept_on_update() {
        let mut robot = json!({"metadata": {"name": "robot"},
            "secrets": [{"name": "robot-token-abcde"}, {"name": "robot-extra"}]});
        ServiceAccounts.clean(
            &GroupKind::SERVICE_ACCOUNT,
            &mut robot,
            &Known::default(),
            &spec(&[], false),
        );
        assert_eq!(robot.pointer("/secrets"), Some(&json!([{"name": "robot-extra"}])));

        let live = json!({"metadata": {"name": "robot"}, "secrets": [{"name": "robot-token-fghij"}]});
        let mut restored = json!({"metadata": {"name": "robot"}});
        ServiceAccounts.carry_over(&GroupKind::SERVICE_ACCOUNT, &live, &mut restored);
        assert_eq!(restored, live);
    }
}
