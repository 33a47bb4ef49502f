//! Namespaces. A Namespace's name follows namespace mapping (the generic step maps the
//! `metadata.namespace` of namespaced objects).

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::Value;

use super::{Known, Rule, map_namespace};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::NAMESPACE];

/// Namespaces.
pub struct Namespaces;

impl Rule for Namespaces {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// Renames the Namespace by the mapping.
    fn clean(&self, _kind: &GroupKind, object: &mut Value, _known: &Known, spec: &RestoreSpec) {
        map_namespace(object, "/metadata/name", spec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use serde_json::json;

    #[test]
    fn a_namespace_is_renamed_by_the_mapping() {
        let spec = spec(&[("app", "copy")], false);
        let mut app = json!({"metadata": {"name": "app"}});
        Namespaces.clean(&GroupKind::NAMESPACE, &mut app, &Known::default(), &spec);
        assert_eq!(app, json!({"metadata": {"name": "copy"}}));
        let mut ops = json!({"metadata": {"name": "ops"}});
        Namespaces.clean(&GroupKind::NAMESPACE, &mut ops, &Known::default(), &spec);
        assert_eq!(ops, json!({"metadata": {"name": "ops"}}));
    }
}
