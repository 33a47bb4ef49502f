//! ConfigMaps. `kube-root-ca.crt` is published in every namespace by the target's root-CA
//! controller, with the target's CA.

use cairn_proto::model::GroupKind;
use serde_json::Value;

use super::{Known, Rule, str_at};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::CONFIG_MAP];

/// ConfigMaps.
pub struct ConfigMaps;

impl Rule for ConfigMaps {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// `kube-root-ca.crt` is left to the root-CA controller.
    fn decide(&self, _kind: &GroupKind, object: &Value, _known: &mut Known) -> Option<String> {
        (str_at(object, "/metadata/name") == "kube-root-ca.crt")
            .then(|| "published in every namespace by the target's root-CA controller".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_root_ca_is_left_to_its_controller() {
        let mut known = Known::default();
        let ca = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "app"}});
        assert!(
            ConfigMaps
                .decide(&GroupKind::CONFIG_MAP, &ca, &mut known)
                .is_some()
        );
        let settings = json!({"metadata": {"name": "settings", "namespace": "app"}});
        assert_eq!(
            ConfigMaps.decide(&GroupKind::CONFIG_MAP, &settings, &mut known),
            None
        );
    }
}
