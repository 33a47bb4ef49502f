//! Jobs. Unless the selector is manual, the Job controller generates it and its pod-template
//! labels from the Job's uid, which the target assigns anew.

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::Value;

use super::{Known, Rule, keep, remove};

/// Labels the Job controller puts on its pod template (and selector) from the source Job's uid.
const JOB_LABELS: &[&str] = &["controller-uid", "job-name"];

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[GroupKind::JOB];

/// Jobs.
pub struct Jobs;

impl Rule for Jobs {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// Drops the generated selector and labels, for the controller to generate afresh.
    fn clean(&self, _kind: &GroupKind, object: &mut Value, _known: &Known, _spec: &RestoreSpec) {
        if object.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true) {
            remove(object, "/spec", &["selector"]);
            remove(object, "/spec/template/metadata/labels", JOB_LABELS);
        }
    }

    /// An existing Job keeps its selector and labels: they cannot change.
    fn carry_over(&self, _kind: &GroupKind, current: &Value, object: &mut Value) {
        keep(current, object, "/spec/selector");
        for label in JOB_LABELS {
            keep(
                current,
                object,
                &format!("/spec/template/metadata/labels/{label}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::rules::tests::spec;
    use serde_json::json;

    fn job(manual: bool) -> Value {
        json!({"spec": {"manualSelector": manual, "selector": {"matchLabels": {"controller-uid": "u"}},
            "template": {"metadata": {"labels": {"controller-uid": "u", "job-name": "j", "app": "batch"}}}}})
    }

    #[test]
    fn a_generated_selector_is_dropped_and_kept_on_update() {
        let mut restored = job(false);
        Jobs.clean(
            &GroupKind::JOB,
            &mut restored,
            &Known::default(),
            &spec(&[], false),
        );
        assert_eq!(
            restored,
            json!({"spec": {"manualSelector": false, "template": {"metadata": {"labels": {"app": "batch"}}}}})
        );
        let mut manual = job(true);
        Jobs.clean(&GroupKind::JOB, &mut manual, &Known::default(), &spec(&[], false));
        assert_eq!(manual, job(true));

        Jobs.carry_over(&GroupKind::JOB, &job(false), &mut restored);
        assert_eq!(restored, job(false));
    }
}
