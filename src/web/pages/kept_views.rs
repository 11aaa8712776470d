//! The routing page of each host as last derived from the watch caches, kept with the
//! revision of the caches it was derived from: the same revision means the same objects, so
//! a view of an unchanged host reuses it (the lookup among the namespace's objects, the
//! policy in words, the YAML and the bars were most of the page's cost).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::route_view::RoutesView;

/// More hosts than this and the kept views start afresh.
const MAX_KEPT: usize = 1024;

/// A view and the revision of the caches it was derived at, by namespace and host.
type Views = HashMap<(String, String), (u64, Arc<RoutesView>)>;

#[derive(Default)]
pub struct KeptRoutesViews {
    views: Mutex<Views>,
}

impl KeptRoutesViews {
    /// The view of `host` derived at `revision` (read before the objects, so a view kept
    /// under it is never older than it), deriving it when none is kept.
    pub fn get_or(
        &self,
        namespace: &str,
        host: &str,
        revision: u64,
        derive: impl FnOnce() -> RoutesView,
    ) -> Arc<RoutesView> {
        let key = (namespace.to_owned(), host.to_owned());
        let kept = self.views.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key).cloned();
        if let Some((_, view)) = kept.filter(|(kept_revision, _)| *kept_revision == revision) {
            return view;
        }
        let view = Arc::new(derive());
        let mut views = self.views.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if views.len() >= MAX_KEPT {
            views.clear();
        }
        views.insert(key, (revision, view.clone()));
        view
    }
}
