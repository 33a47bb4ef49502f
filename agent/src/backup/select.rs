//! Which resource types a backup takes: `--include-resources` / `--exclude-resources`.

use crate::discover::Resource;

/// Whether `pattern` names `resource`. Accepted forms, case-insensitive: `plural`, `singular`
/// (the kind), `plural.group`, `plural.version` (core), `plural.version.group`.
pub fn matches(pattern: &str, resource: &Resource) -> bool {
    let p = pattern.trim().to_ascii_lowercase();
    let api = &resource.api;
    let plural = api.plural.to_ascii_lowercase();
    let kind = api.kind.to_ascii_lowercase();
    let group = api.group.to_ascii_lowercase();
    let version = api.version.to_ascii_lowercase();
    let qualified = |name: &str| {
        let mut forms = vec![name.to_owned(), format!("{name}.{version}")];
        if !group.is_empty() {
            forms.push(format!("{name}.{group}"));
            forms.push(format!("{name}.{version}.{group}"));
        }
        forms
    };
    qualified(&plural).contains(&p) || qualified(&kind).contains(&p)
}

/// Whether a backup with these filters takes `resource`.
pub fn is_selected(include: &[String], exclude: &[String], resource: &Resource) -> bool {
    (include.is_empty() || include.iter().any(|p| matches(p, resource)))
        && !exclude.iter().any(|p| matches(p, resource))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::discovery::ApiResource;

    fn res(group: &str, version: &str, kind: &str, plural: &str) -> Resource {
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        let api = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        };
        Resource {
            api,
            namespaced: true,
        }
    }

    #[test]
    fn names_resources_as_kubectl_does() {
        let deploy = res("apps", "v1", "Deployment", "deployments");
        let cm = res("", "v1", "ConfigMap", "configmaps");
        for p in [
            "deployments",
            "Deployment",
            "deployments.apps",
            "deployments.v1.apps",
        ] {
            assert!(matches(p, &deploy), "{p}");
        }
        assert!(matches("configmaps.v1", &cm));
        assert!(!matches("configmaps.apps", &cm));
        assert!(!matches("deploy", &deploy));
        assert!(is_selected(&[], &["secrets".into()], &cm));
        assert!(!is_selected(&["deployments".into()], &[], &cm));
    }
}
