//! What an actor may see: whole namespaces, and single hosts of others.
use std::collections::BTreeSet;

/// The part of the managed namespaces an actor may view, in the managed order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewScope {
    namespaces: Vec<NamespaceView>,
    /// No team file: everything is visible to everyone, audit entries of namespaces no
    /// longer managed included (as before the View rule).
    unrestricted: bool,
}

/// The objects of one namespace an actor may view: all of them, or those of these names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleObjects {
    pub namespace: String,
    /// None: every object of the namespace; Some: the objects of these names.
    pub names: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NamespaceView {
    namespace: String,
    /// None: the whole namespace; Some: only these hosts (never empty).
    hosts: Option<BTreeSet<String>>,
}

impl ViewScope {
    pub(super) fn unrestricted(managed: &[String]) -> Self {
        let mut scope = Self { unrestricted: true, ..Self::default() };
        managed.iter().for_each(|namespace| scope.push_whole(namespace));
        scope
    }

    pub(super) fn push_whole(&mut self, namespace: &str) {
        self.insert(NamespaceView { namespace: namespace.to_owned(), hosts: None });
    }

    pub(super) fn push_hosts(&mut self, namespace: &str, hosts: BTreeSet<String>) {
        if !hosts.is_empty() {
            self.insert(NamespaceView { namespace: namespace.to_owned(), hosts: Some(hosts) });
        }
    }

    /// Kept sorted by namespace (the managed order), so that a look-up is a binary search:
    /// a page of a thousand namespaces looks each one up.
    fn insert(&mut self, view: NamespaceView) {
        let at = self.namespaces.partition_point(|kept| kept.namespace < view.namespace);
        self.namespaces.insert(at, view);
    }

    fn find(&self, namespace: &str) -> Option<&NamespaceView> {
        let at = self.namespaces.binary_search_by(|view| view.namespace.as_str().cmp(namespace)).ok()?;
        self.namespaces.get(at)
    }

    /// Nothing at all (anonymous with a team file, or a user in no team).
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// The namespaces with anything to see, in the managed order.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|view| view.namespace.clone()).collect()
    }

    /// Something of the namespace (at least one host).
    pub fn namespace(&self, namespace: &str) -> bool {
        self.unrestricted || self.find(namespace).is_some()
    }

    /// The whole namespace: namespace-level objects and every host.
    pub fn whole_namespace(&self, namespace: &str) -> bool {
        self.unrestricted || self.find(namespace).is_some_and(|view| view.hosts.is_none())
    }

    pub fn host(&self, namespace: &str, host: &str) -> bool {
        self.unrestricted
            || self.find(namespace).is_some_and(|view| view.hosts.as_ref().is_none_or(|hosts| hosts.contains(host)))
    }

    /// Every one of `managed` whole: what the whole audit log's verification reports on.
    pub fn everything(&self, managed: &[String]) -> bool {
        managed.iter().all(|namespace| self.whole_namespace(namespace))
    }

    /// Something about `host` (None: about the namespace itself, which needs all of it).
    pub fn host_or_whole(&self, namespace: &str, host: Option<&str>) -> bool {
        match host {
            None => self.whole_namespace(namespace),
            Some(host) => self.host(namespace, host),
        }
    }

    /// An audited change to `kind`/`name`: a namespace-level object needs the whole
    /// namespace, an object of a host that host.
    pub fn object(&self, namespace: &str, kind: &str, name: &str) -> bool {
        self.host_or_whole(namespace, crate::tutorial::host_of_object(kind, name).as_deref())
    }

    /// The same rule as [`Self::object`], as a store of records about objects filters by
    /// it: per namespace, every object (None), or the names of the visible hosts' objects.
    /// None for the whole: everything is visible.
    pub fn visible_objects(&self) -> Option<Vec<VisibleObjects>> {
        if self.unrestricted {
            return None;
        }
        let visible =
            self.namespaces
                .iter()
                .map(|view| VisibleObjects {
                    namespace: view.namespace.clone(),
                    names: view.hosts.as_ref().map(|hosts| {
                        hosts.iter().flat_map(|host| crate::tutorial::object_names_of_host(host)).collect()
                    }),
                })
                .collect();
        Some(visible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> ViewScope {
        let mut scope = ViewScope::default();
        scope.push_whole("shop");
        scope.push_hosts("tutorial", BTreeSet::from(["recommendation".to_owned()]));
        scope.push_hosts("empty", BTreeSet::new());
        scope
    }

    #[test]
    fn hosts_of_a_namespace_do_not_show_the_rest_of_it() {
        let scope = scope();
        assert_eq!(scope.namespaces(), ["shop", "tutorial"], "a namespace with no host is not listed");
        assert!(scope.host("tutorial", "recommendation"));
        assert!(!scope.host("tutorial", "preference"));
        assert!(scope.host("shop", "anything"));
        assert!(!scope.whole_namespace("tutorial"));
        assert!(!scope.namespace("empty"));
        assert!(!scope.everything(&["shop".into(), "tutorial".into()]));
        assert!(scope.everything(&["shop".into()]));
        let open = ViewScope::unrestricted(&["tutorial".into()]);
        assert!(open.object("retired", "Namespace", "retired") && open.visible_objects().is_none());
        assert_eq!(open.namespaces(), ["tutorial"]);
    }

    #[test]
    fn audited_objects_follow_their_host() {
        let scope = scope();
        assert!(scope.object("tutorial", "Deployment", "recommendation-v2"));
        assert!(scope.object("tutorial", "VirtualService", "recommendation"));
        assert!(scope.object("tutorial", "Service", "recommendation"));
        assert!(!scope.object("tutorial", "Deployment", "preference-v1"));
        assert!(!scope.object("tutorial", "Namespace", "tutorial"), "namespace-level needs the whole namespace");
        assert!(scope.object("shop", "Namespace", "shop"));
        let filter = scope.visible_objects().unwrap();
        assert_eq!(filter[0].names, None);
        let names = filter[1].names.clone().unwrap();
        assert!(names.contains(&"recommendation".to_owned()) && names.contains(&"recommendation-v3".to_owned()));
        assert!(!names.contains(&"preference-v1".to_owned()));
    }
}
