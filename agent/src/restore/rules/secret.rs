//! Secrets. A service-account token is the target's token controller's to issue.

use cairn_proto::model::GroupKind;
use serde_json::Value;

use super::{Known, Rule, str_at};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::SECRET];

/// Secrets.
pub struct Secrets;

impl Rule for Secrets {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// Service-account tokens are left to the token controller.
    fn decide(&self, _kind: &GroupKind, object: &Value, _known: &mut Known) -> Option<String> {
        (str_at(object, "/type") == "kubernetes.io/service-account-token")
            .then(|| "service-account token: the target's token controller issues a new one".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_left_to_the_token_controller() {
        let mut known = Known::default();
        let token =
            json!({"metadata": {"name": "robot-token-x"}, "type": "kubernetes.io/service-account-token"});
        assert_eq!(
            Secrets.decide(&GroupKind::SECRET, &token, &mut known),
            Some("service-account token: the target's token controller issues a new one".into())
        );
        let opaque = json!({"metadata": {"name": "creds"}, "type": "Opaque"});
        assert_eq!(Secrets.decide(&GroupKind::SECRET, &opaque, &mut known), None);
    }
}
