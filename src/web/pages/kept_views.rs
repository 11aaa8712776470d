//! Page parts kept between views. The routing page of each host as last derived from the
//! watch caches, kept with the revision of the caches it was derived from: the same revision
//! means the same objects, so a view of an unchanged host reuses it (the lookup among the
//! namespace's objects, the policy in words, the YAML and the bars were most of the page's
//! cost). The audit history's rows, kept by the page of entries they show.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::route_view::RoutesView;
use crate::audit::Entry;

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

/// How many rendered pages of audit rows are kept.
const KEPT_ROW_PAGES: usize = 16;

/// The audit history's rows as last rendered, by the page of entries they were rendered
/// from: the store hands out the same page (`Arc`) until its next commit, so the same
/// pointer means the same rows. Rendering the fifty rows was most of the history page's cost.
/// A page of entries and its rendered rows.
type RenderedPage = (Arc<Vec<Entry>>, Arc<str>);

#[derive(Default)]
pub struct KeptAuditRows {
    pages: Mutex<Vec<RenderedPage>>,
}

impl KeptAuditRows {
    /// The rows of `entries`, rendered by `render` when they are not kept.
    pub fn get_or<E>(
        &self,
        entries: &Arc<Vec<Entry>>,
        render: impl FnOnce() -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        let kept = self.lock().iter().find(|(page, _)| Arc::ptr_eq(page, entries)).map(|(_, rows)| rows.clone());
        if let Some(rows) = kept {
            return Ok(rows);
        }
        let rows: Arc<str> = render()?.into();
        let mut pages = self.lock();
        if pages.len() >= KEPT_ROW_PAGES {
            pages.remove(0);
        }
        pages.push((entries.clone(), rows.clone()));
        Ok(rows)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RenderedPage>> {
        self.pages.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_rendered_once_per_page_of_entries_and_again_for_another_page() {
        let kept = KeptAuditRows::default();
        let (first, second) = (Arc::new(Vec::new()), Arc::new(Vec::new()));
        let mut renders = 0;
        let mut render = |text: &str| {
            renders += 1;
            Ok::<_, ()>(text.to_owned())
        };
        assert_eq!(&*kept.get_or(&first, || render("a")).unwrap(), "a");
        assert_eq!(&*kept.get_or(&first, || render("not again")).unwrap(), "a");
        // An equal but other page (the store read again after a commit) is rendered anew.
        assert_eq!(&*kept.get_or(&second, || render("b")).unwrap(), "b");
        assert_eq!(renders, 2);
    }
}
