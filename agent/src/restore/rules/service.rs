//! Services and the endpoints derived from them. A Service gets new cluster IPs (and node ports,
//! unless asked to keep them) from the target; the Endpoints and EndpointSlices of a Service with
//! a selector are the target's controllers' to derive.

use cairn_proto::model::{GroupKind, RestoreSpec};
use serde_json::Value;

use super::{Known, Rule, id, keep, remove};

/// The kinds of this rule.
const KINDS: &[GroupKind] = &[
    GroupKind::SERVICE,
    GroupKind::ENDPOINTS,
    GroupKind::ENDPOINT_SLICE,
];

/// Services, Endpoints and EndpointSlices.
pub struct Services;

impl Rule for Services {
    fn applies_to(&self) -> &'static [GroupKind] {
        KINDS
    }

    /// Notes Services with a selector (restored before their endpoints: endpoints reference
    /// them), and leaves those Services' endpoints to the target.
    fn decide(&self, kind: &GroupKind, object: &Value, known: &mut Known) -> Option<String> {
        let (namespace, name) = id(object);
        if *kind == GroupKind::SERVICE {
            let selector = object
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .is_some_and(|s| !s.is_empty());
            if selector {
                known.selector_services.insert((namespace, name));
            }
            None
        } else if *kind == GroupKind::ENDPOINTS {
            known.selector_services.contains(&(namespace, name)).then(|| {
                "endpoints of a Service with a selector: the endpoints controller derives them".into()
            })
        } else {
            let service = object
                .pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str);
            service
                .is_some_and(|s| known.selector_services.contains(&(namespace, s.to_owned())))
                .then(|| {
                    "endpoint slice of a Service with a selector: the endpoint-slice controller derives it"
                        .into()
                })
        }
    }

    /// A Service's cluster IPs (unless headless), health-check port and node ports (unless
    /// `--preserve-node-ports`) are the target's to assign.
    fn clean(&self, kind: &GroupKind, object: &mut Value, _known: &Known, spec: &RestoreSpec) {
        if *kind != GroupKind::SERVICE {
            return;
        }
        let headless = object.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            remove(object, "/spec", &["clusterIP", "clusterIPs"]);
        }
        remove(object, "/spec", &["healthCheckNodePort"]);
        if !spec.preserve_node_ports
            && let Some(Value::Array(ports)) = object.pointer_mut("/spec/ports")
        {
            for port in ports {
                remove(port, "", &["nodePort"]);
            }
        }
    }

    /// An existing Service keeps its cluster IPs, health-check port and node ports (port by port,
    /// matched on port and protocol) unless the backup sets them.
    fn carry_over(&self, kind: &GroupKind, current: &Value, object: &mut Value) {
        if *kind != GroupKind::SERVICE {
            return;
        }
        keep(current, object, "/spec/clusterIP");
        keep(current, object, "/spec/clusterIPs");
        keep(current, object, "/spec/healthCheckNodePort");
        let live_ports = current
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(ports)) = object.pointer_mut("/spec/ports") {
            for port in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                let same = live_ports
                    .iter()
                    .find(|l| l.get("port") == port.get("port") && l.get("protocol") == port.get("protocol"));
                if let (Some(node_port), Some(map)) =
                    (same.and_then(|l| l.get("nodePort")), port.as_object_mut())
                {
                    map.insert("nodePort".into(), node_port.clone());
                }
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
    fn endpoints_of_selector_services_are_left_to_controllers() {
        let mut known = Known::default();
        let svc =
            json!({"metadata": {"name": "web", "namespace": "app"}, "spec": {"selector": {"app": "web"}}});
        assert_eq!(Services.decide(&GroupKind::SERVICE, &svc, &mut known), None);
        let manual = json!({"metadata": {"name": "db", "namespace": "app"}, "spec": {}});
        assert_eq!(Services.decide(&GroupKind::SERVICE, &manual, &mut known), None);

        let ep = |name: &str| json!({"metadata": {"name": name, "namespace": "app"}});
        assert!(
            Services
                .decide(&GroupKind::ENDPOINTS, &ep("web"), &mut known)
                .is_some()
        );
        assert_eq!(
            Services.decide(&GroupKind::ENDPOINTS, &ep("db"), &mut known),
            None
        );

        let slice = |service: &str| {
            json!({"metadata": {"name": format!("{service}-abc"), "namespace": "app",
                                "labels": {"kubernetes.io/service-name": service}}})
        };
        assert!(
            Services
                .decide(&GroupKind::ENDPOINT_SLICE, &slice("web"), &mut known)
                .is_some()
        );
        assert_eq!(
            Services.decide(&GroupKind::ENDPOINT_SLICE, &slice("db"), &mut known),
            None
        );
    }

    #[test]
    fn a_service_loses_what_the_target_assigns() {
        let mut svc = json!({"spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
            "healthCheckNodePort": 32000, "ports": [{"port": 80, "nodePort": 30080}]}});
        Services.clean(
            &GroupKind::SERVICE,
            &mut svc,
            &Known::default(),
            &spec(&[], false),
        );
        assert_eq!(svc, json!({"spec": {"ports": [{"port": 80}]}}));
    }

    #[test]
    fn an_update_keeps_the_live_ips_and_node_ports() {
        let live = json!({"spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000},
                      {"port": 443, "protocol": "TCP", "nodePort": 31443}]}});
        let mut restored = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"},
                                                     {"port": 443, "protocol": "TCP", "nodePort": 30443}]}});
        Services.carry_over(&GroupKind::SERVICE, &live, &mut restored);
        assert_eq!(
            restored,
            json!({"spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"],
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000},
                          {"port": 443, "protocol": "TCP", "nodePort": 30443}]}})
        );
    }
}
