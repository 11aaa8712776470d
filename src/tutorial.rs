//! The Istio tutorial's workloads (customer → preference → recommendation v1/v2/v3) as
//! Kubernetes objects, matching the tutorial's own manifests. Pure: no I/O.
use serde_json::{Value, json};

/// A deployable unit of the tutorial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    Customer,
    Preference,
    RecommendationV1,
    RecommendationV2,
    RecommendationV3,
}

/// The container settings in which the tutorial's Deployments differ.
struct Container {
    image: &'static str,
    /// (requests memory, limits memory); v3 declares no resources at all.
    memory: Option<(&'static str, &'static str)>,
    /// (initialDelaySeconds, periodSeconds, timeoutSeconds) of liveness and readiness.
    liveness: (u32, u32, u32),
    readiness: (u32, u32, u32),
    /// v3 runs under the namespace's default ServiceAccount.
    own_service_account: bool,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Customer,
        Workload::Preference,
        Workload::RecommendationV1,
        Workload::RecommendationV2,
        Workload::RecommendationV3,
    ];

    /// The name people and the API use: `customer`, `preference`, `recommendation-v2`, ...
    pub fn name(self) -> &'static str {
        match self {
            Workload::Customer => "customer",
            Workload::Preference => "preference",
            Workload::RecommendationV1 => "recommendation-v1",
            Workload::RecommendationV2 => "recommendation-v2",
            Workload::RecommendationV3 => "recommendation-v3",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|workload| workload.name() == name)
    }

    /// The `app` label, which is also the Service and ServiceAccount name.
    pub fn app(self) -> &'static str {
        match self {
            Workload::Customer => "customer",
            Workload::Preference => "preference",
            _ => "recommendation",
        }
    }

    /// The `version` label.
    pub fn version(self) -> &'static str {
        match self {
            Workload::RecommendationV2 => "v2",
            Workload::RecommendationV3 => "v3",
            _ => "v1",
        }
    }

    /// The Deployment's name (the tutorial names preference's `preference-v1`).
    pub fn deployment_name(self) -> &'static str {
        match self {
            Workload::Preference => "preference-v1",
            other => other.name(),
        }
    }

    /// The container image the tutorial runs.
    pub fn image(self) -> &'static str {
        self.container().image
    }

    fn container(self) -> Container {
        let java = Container {
            image: "",
            memory: Some(("80Mi", "120Mi")),
            liveness: (5, 4, 1),
            readiness: (6, 5, 1),
            own_service_account: true,
        };
        match self {
            Workload::Customer => Container {
                image: "quay.io/rhdevelopers/istio-tutorial-customer:v1.1",
                memory: Some(("20Mi", "40Mi")),
                ..java
            },
            Workload::Preference => Container {
                image: "quay.io/rhdevelopers/istio-tutorial-preference:v1.1",
                memory: Some(("20Mi", "40Mi")),
                ..java
            },
            Workload::RecommendationV1 => {
                Container { image: "quay.io/rhdevelopers/istio-tutorial-recommendation:v1.2", ..java }
            }
            Workload::RecommendationV2 => {
                Container { image: "quay.io/rhdevelopers/istio-tutorial-recommendation:v2.2", ..java }
            }
            Workload::RecommendationV3 => Container {
                image: "quay.io/rhdevelopers/istio-tutorial-recommendation:v3.2",
                memory: None,
                liveness: (3, 1, 5),
                readiness: (3, 1, 5),
                own_service_account: false,
            },
        }
    }

    pub fn service_account(self) -> Value {
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.app()}})
    }

    pub fn service(self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.app(), "labels": {"app": self.app()}},
            "spec": {"ports": [{"name": "http", "port": 8080}], "selector": {"app": self.app()}}
        })
    }

    pub fn deployment(self, replicas: i32) -> Value {
        let container = self.container();
        let labels = json!({"app": self.app(), "version": self.version()});
        let mut pod_spec = json!({"containers": [self.container_spec(&container)]});
        if container.own_service_account {
            pod_spec["serviceAccount"] = json!(self.app());
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.deployment_name(), "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "true"}},
                    "spec": pod_spec
                }
            }
        })
    }

    fn container_spec(self, container: &Container) -> Value {
        let probe = |path: &str, (initial_delay, period, timeout): (u32, u32, u32)| {
            json!({
                "exec": {"command": ["curl", format!("localhost:8080{path}")]},
                "initialDelaySeconds": initial_delay,
                "periodSeconds": period,
                "timeoutSeconds": timeout
            })
        };
        let port = |port: u16, name: &str| json!({"containerPort": port, "name": name, "protocol": "TCP"});
        let mut spec = json!({
            "env": [{"name": "JAVA_OPTIONS", "value": "-Xms15m -Xmx15m -Xmn15m"}],
            "name": self.app(),
            "image": container.image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [port(8080, "http"), port(8778, "jolokia"), port(9779, "prometheus")],
            "livenessProbe": probe("/health/live", container.liveness),
            "readinessProbe": probe("/health/ready", container.readiness),
            "securityContext": {"privileged": false}
        });
        if let Some((request, limit)) = container.memory {
            spec["resources"] = json!({
                "requests": {"memory": request, "cpu": "200m"},
                "limits": {"memory": limit, "cpu": "500m"}
            });
        }
        spec
    }

    /// The customer's ingress: Gateway and VirtualService routing `/customer` to it.
    pub fn ingress(self) -> Option<[Value; 2]> {
        (self == Workload::Customer).then(|| {
            [
                json!({
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "Gateway",
                    "metadata": {"name": "customer-gateway"},
                    "spec": {
                        "selector": {"istio": "ingressgateway"},
                        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
                    }
                }),
                json!({
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "VirtualService",
                    "metadata": {"name": "customer-gateway"},
                    "spec": {
                        "hosts": ["*"],
                        "gateways": ["customer-gateway"],
                        "http": [{
                            "match": [{"uri": {"prefix": "/customer"}}],
                            "rewrite": {"uri": "/"},
                            "route": [{"destination": {"host": "customer", "port": {"number": 8080}}}]
                        }]
                    }
                }),
            ]
        })
    }

    /// The names of [`Self::objects`].
    fn object_names(self) -> Vec<&'static str> {
        let mut names = vec![self.app(), self.deployment_name()];
        if self.ingress().is_some() {
            names.push("customer-gateway");
        }
        names
    }

    /// Every object the workload consists of, in the order they are applied.
    pub fn objects(self, replicas: i32) -> Vec<Value> {
        let mut objects = vec![self.service_account(), self.service(), self.deployment(replicas)];
        objects.extend(self.ingress().into_iter().flatten());
        objects
    }
}

/// The host (`app`) an object belongs to: a tutorial workload's objects belong to its app,
/// any other object is named after its host. None for the namespace itself.
pub fn host_of_object(kind: &str, name: &str) -> Option<String> {
    if kind == "Namespace" {
        return None;
    }
    let owner = Workload::ALL.into_iter().find(|workload| workload.object_names().contains(&name));
    Some(owner.map_or_else(|| name.to_owned(), |workload| workload.app().to_owned()))
}

/// The names of a host's objects: the host's own name and its workloads' objects.
pub fn object_names_of_host(host: &str) -> Vec<String> {
    let mut names = vec![host.to_owned()];
    for workload in Workload::ALL.into_iter().filter(|workload| workload.app() == host) {
        names.extend(workload.object_names().into_iter().map(String::from));
    }
    names.sort();
    names.dedup();
    names
}

/// The namespace the tutorial runs in, with Istio's sidecar injection turned on.
pub fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"istio-injection": "enabled"}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_of_a_workload_belongs_to_its_host() {
        for workload in Workload::ALL {
            for object in workload.objects(1) {
                let (kind, name) = (object["kind"].as_str().unwrap(), object["metadata"]["name"].as_str().unwrap());
                assert_eq!(host_of_object(kind, name).as_deref(), Some(workload.app()), "{kind}/{name}");
                assert!(crate::cluster::Kind::parse(kind).is_some(), "signalbox writes {kind}");
                assert!(object_names_of_host(workload.app()).iter().any(|n| n == name), "{kind}/{name}");
            }
        }
        assert_eq!(host_of_object("Namespace", "tutorial"), None);
        assert_eq!(host_of_object("VirtualService", "reviews"), Some("reviews".into()));
        assert!(!object_names_of_host("recommendation").contains(&"preference-v1".to_owned()));
    }

    #[test]
    fn names_parse_back() {
        for workload in Workload::ALL {
            assert_eq!(Workload::parse(workload.name()), Some(workload));
        }
        assert_eq!(Workload::parse("recommendation-v9"), None);
    }

    #[test]
    fn replicas_are_as_asked() {
        assert_eq!(Workload::RecommendationV2.deployment(2)["spec"]["replicas"], 2);
    }

    #[test]
    fn only_customer_has_an_ingress() {
        assert!(Workload::Customer.ingress().is_some());
        assert!(Workload::ALL[1..].iter().all(|w| w.ingress().is_none()));
        assert_eq!(Workload::Customer.objects(1).len(), 5);
        assert_eq!(Workload::Preference.objects(1).len(), 3);
    }
}
