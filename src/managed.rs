//! Which namespaces the console manages: names given explicitly, and those whose labels
//! match a selector (like Istio's `discoverySelectors`), followed live from the cluster's
//! Namespaces. A shared value with no I/O: the caches feed it, everyone else reads it.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::core::{Selector, SelectorExt};

mod selector;

pub use selector::parse_selector;

/// The managed namespaces, as they are now. Cheap to clone; every clone sees the same set.
#[derive(Clone)]
pub struct ManagedNamespaces {
    explicit: Arc<Vec<String>>,
    selector: Option<Arc<(Selector, String)>>,
    now: Arc<RwLock<Current>>,
}

#[derive(Default)]
struct Current {
    names: Arc<Vec<String>>,
    /// Why a namespace that was managed is not any more.
    gone: HashMap<String, Departure>,
}

/// Why a namespace left the managed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    Deleted,
    Unlabelled,
}

/// What a new look at the cluster's Namespaces changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moves {
    pub joined: Vec<String>,
    pub left: Vec<String>,
}

impl ManagedNamespaces {
    /// Exactly these namespaces, whatever their labels (the `--namespace` flag alone).
    pub fn fixed(names: Vec<String>) -> Self {
        Self::new(names, None)
    }

    /// `explicit` always, plus every existing namespace whose labels `selector` matches
    /// (`selector` is its text, as given, for messages).
    pub fn new(explicit: Vec<String>, selector: Option<(Selector, String)>) -> Self {
        let names = Arc::new(sorted(explicit.iter().cloned()));
        let current = Current { names, gone: HashMap::new() };
        Self { explicit: Arc::new(explicit), selector: selector.map(Arc::new), now: Arc::new(RwLock::new(current)) }
    }

    /// True when the set follows labels (it can grow and shrink while running).
    pub fn follows_labels(&self) -> bool {
        self.selector.is_some()
    }

    /// The selector as given (`istio-injection=enabled`), if any.
    pub fn selector_text(&self) -> Option<&str> {
        self.selector.as_deref().map(|(_, text)| text.as_str())
    }

    /// The names given explicitly.
    pub fn explicit(&self) -> &[String] {
        &self.explicit
    }

    /// The managed namespaces now, sorted.
    pub fn names(&self) -> Arc<Vec<String>> {
        self.read().names.clone()
    }

    pub fn contains(&self, namespace: &str) -> bool {
        self.read().names.binary_search_by(|name| name.as_str().cmp(namespace)).is_ok()
    }

    /// Why `namespace` is not managed, in words for a 404: it left (deleted, unlabelled)
    /// or was never selected.
    pub fn why_not(&self, namespace: &str) -> String {
        let departure = self.read().gone.get(namespace).copied();
        let selector = self.selector_text();
        match (departure, selector) {
            (Some(Departure::Deleted), _) => {
                format!("namespace {namespace} is not managed by this console any more: it was deleted")
            }
            (Some(Departure::Unlabelled), Some(selector)) => format!(
                "namespace {namespace} is not managed by this console any more: its labels no longer match {selector}"
            ),
            (_, Some(selector)) => format!(
                "namespace {namespace} is not managed by this console: it is not named with --namespace \
                 and no existing namespace of that name has labels matching {selector}"
            ),
            (_, None) => format!("namespace {namespace} is not managed by this console"),
        }
    }

    /// Takes the cluster's Namespaces now (name and labels of each) and returns who joined
    /// and who left. Explicit names stay whatever the cluster says.
    pub fn observe<'a>(&self, namespaces: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>) -> Moves {
        let Some(selector) = &self.selector else { return Moves::default() };
        let existing: BTreeMap<&str, &BTreeMap<String, String>> = namespaces.into_iter().collect();
        let selected =
            existing.iter().filter(|(_, labels)| selector.0.matches(labels)).map(|(name, _)| name.to_string());
        let names = sorted(self.explicit.iter().cloned().chain(selected));
        let mut now = self.now.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let before: BTreeSet<&String> = now.names.iter().collect();
        let after: BTreeSet<&String> = names.iter().collect();
        let moves = Moves {
            joined: after.difference(&before).map(|name| name.to_string()).collect(),
            left: before.difference(&after).map(|name| name.to_string()).collect(),
        };
        for name in &moves.left {
            let why = if existing.contains_key(name.as_str()) { Departure::Unlabelled } else { Departure::Deleted };
            now.gone.insert(name.clone(), why);
        }
        for name in &moves.joined {
            now.gone.remove(name);
        }
        now.names = Arc::new(names);
        moves
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.now.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for ManagedNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedNamespaces")
            .field("explicit", &self.explicit)
            .field("selector", &self.selector_text())
            .field("now", &self.names())
            .finish()
    }
}

impl From<Vec<String>> for ManagedNamespaces {
    fn from(names: Vec<String>) -> Self {
        Self::fixed(names)
    }
}

fn sorted(names: impl Iterator<Item = String>) -> Vec<String> {
    names.collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Expression;

    /// A selector of one `key=value`.
    fn label_is(key: &str, value: &str) -> (Selector, String) {
        (Selector::from(Expression::Equal(key.into(), value.into())), format!("{key}={value}"))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn labelled_namespaces_join_and_leave_with_the_reason_kept() {
        let managed = ManagedNamespaces::new(vec!["tutorial".into()], Some(label_is("istio-injection", "enabled")));
        let (on, off) = (labels(&[("istio-injection", "enabled")]), labels(&[]));
        let moves = managed.observe([("tutorial", &off), ("shop", &on), ("other", &off)]);
        assert_eq!(moves, Moves { joined: vec!["shop".into()], left: vec![] });
        assert_eq!(*managed.names(), ["shop", "tutorial"], "explicit names stay without the label");
        assert!(managed.contains("shop") && !managed.contains("other"));

        let moves = managed.observe([("tutorial", &off), ("shop", &off), ("cart", &on)]);
        assert_eq!(moves, Moves { joined: vec!["cart".into()], left: vec!["shop".into()] });
        assert!(managed.why_not("shop").contains("its labels no longer match istio-injection=enabled"));

        let moves = managed.observe([("tutorial", &off)]);
        assert_eq!(moves.left, ["cart"]);
        assert!(managed.why_not("cart").contains("it was deleted"), "{}", managed.why_not("cart"));
        assert!(managed.why_not("never").contains("labels matching istio-injection=enabled"));

        managed.observe([("tutorial", &off), ("cart", &on)]);
        assert!(managed.contains("cart"), "a namespace can come back");
    }

    #[test]
    fn a_fixed_set_ignores_the_cluster() {
        let managed = ManagedNamespaces::fixed(vec!["b".into(), "a".into()]);
        assert_eq!(managed.observe([("c", &labels(&[("x", "y")]))]), Moves::default());
        assert_eq!(*managed.names(), ["a", "b"]);
        assert_eq!(managed.why_not("c"), "namespace c is not managed by this console");
    }
}
