//! Objects a GitOps tool owns: Argo CD, Flux or Helm put them there from Git (or a chart) and
//! put them back at their next sync, so a console's change to them is undone. The path
//! refuses, warns about or allows such writes (`--gitops`); previews always show them, so
//! the change can go to Git instead.
use serde::Serialize;
use serde_json::Value;

use crate::cluster::Operation;

/// What the path does with a write over an object a GitOps tool owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GitopsMode {
    /// Refused with 409, naming the owner (previews still answer, with the objects for Git).
    #[default]
    Refuse,
    /// Applied, with the warning in the audit entry.
    Warn,
    /// Applied as any other write.
    Allow,
}

/// The tool and the application (or release) an object belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitOwner {
    pub tool: &'static str,
    pub name: String,
}

impl GitOwner {
    /// `owned by Argo CD application shop`.
    pub fn describe(&self) -> String {
        let unit = match self.tool {
            "Argo CD" => "application",
            "Flux" => "Kustomization or HelmRelease",
            _ => "release",
        };
        format!("owned by {} {unit} {}", self.tool, self.name)
    }
}

/// An object a change writes that a GitOps tool owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedObject {
    /// `VirtualService recommendation`.
    pub object: String,
    pub owner: GitOwner,
}

impl OwnedObject {
    /// `VirtualService recommendation is owned by Argo CD application shop: a change here is
    /// undone at its next sync — change it in Git`.
    pub fn message(&self) -> String {
        format!(
            "{} is {}: a change here is undone at its next sync — change it in Git",
            self.object,
            self.owner.describe()
        )
    }
}

/// Who owns `object`, from the marks each tool leaves on what it applies.
pub fn owner_of(object: &Value) -> Option<GitOwner> {
    let metadata = &object["metadata"];
    let label = |name: &str| metadata["labels"][name].as_str().filter(|v| !v.is_empty());
    let annotation = |name: &str| metadata["annotations"][name].as_str().filter(|v| !v.is_empty());
    let owner = |tool: &'static str, name: &str| Some(GitOwner { tool, name: name.to_owned() });
    // Argo CD's annotation tracking: `<application>:<group>/<kind>:<namespace>/<name>`.
    if let Some(tracking) = annotation("argocd.argoproj.io/tracking-id") {
        return owner("Argo CD", tracking.split(':').next().unwrap_or(tracking));
    }
    // Argo CD's label tracking, when Argo CD's controller wrote the object.
    if let Some(instance) = label("app.kubernetes.io/instance").filter(|_| written_by_argo_cd(metadata)) {
        return owner("Argo CD", instance);
    }
    if let (Some(name), Some(namespace)) =
        (label("kustomize.toolkit.fluxcd.io/name"), label("kustomize.toolkit.fluxcd.io/namespace"))
    {
        return owner("Flux", &format!("{namespace}/{name}"));
    }
    if let Some(name) = label("helm.toolkit.fluxcd.io/name") {
        let namespace = label("helm.toolkit.fluxcd.io/namespace");
        return owner("Flux", &namespace.map_or(name.to_owned(), |ns| format!("{ns}/{name}")));
    }
    if label("app.kubernetes.io/managed-by") == Some("Helm") {
        return annotation("meta.helm.sh/release-name").and_then(|release| owner("Helm", release));
    }
    None
}

fn written_by_argo_cd(metadata: &Value) -> bool {
    let managers = metadata["managedFields"].as_array().into_iter().flatten();
    managers.filter_map(|entry| entry["manager"].as_str()).any(|manager| manager.starts_with("argocd"))
}

/// What the operations would overwrite or delete that a GitOps tool owns; `changes(index)`
/// says whether operation `index` changes its object at all (an apply that leaves it as it
/// is undoes nothing at the next sync).
pub fn owned_writes(
    operations: &[Operation],
    owners: &[Option<GitOwner>],
    changes: impl Fn(usize) -> bool,
) -> Vec<OwnedObject> {
    operations
        .iter()
        .zip(owners)
        .enumerate()
        .filter(|(index, _)| changes(*index))
        .filter_map(|(_, (operation, owner))| {
            let target = operation.target();
            Some(OwnedObject { object: format!("{} {}", target.kind, target.name), owner: owner.clone()? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(labels: Value, annotations: Value, managers: &[&str]) -> Value {
        let managed: Vec<Value> = managers.iter().map(|m| json!({"manager": m, "operation": "Apply"})).collect();
        json!({"metadata": {"name": "recommendation", "labels": labels, "annotations": annotations, "managedFields": managed}})
    }

    #[test]
    fn argo_cd_flux_and_helm_are_recognised_by_their_marks() {
        let tracked = object(
            json!({}),
            json!({"argocd.argoproj.io/tracking-id": "shop:networking.istio.io/VirtualService:prod/recommendation"}),
            &[],
        );
        assert_eq!(owner_of(&tracked), Some(GitOwner { tool: "Argo CD", name: "shop".into() }));
        let labelled = object(json!({"app.kubernetes.io/instance": "shop"}), json!({}), &["argocd-controller"]);
        assert_eq!(owner_of(&labelled).unwrap().describe(), "owned by Argo CD application shop");
        let kustomized = object(
            json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}),
            json!({}),
            &["kustomize-controller"],
        );
        assert_eq!(owner_of(&kustomized), Some(GitOwner { tool: "Flux", name: "flux-system/apps".into() }));
        let released = object(json!({"helm.toolkit.fluxcd.io/name": "shop"}), json!({}), &[]);
        assert_eq!(owner_of(&released).unwrap().tool, "Flux");
        let helm = object(
            json!({"app.kubernetes.io/managed-by": "Helm"}),
            json!({"meta.helm.sh/release-name": "shop"}),
            &["helm"],
        );
        assert_eq!(owner_of(&helm).unwrap().describe(), "owned by Helm release shop");
    }

    #[test]
    fn an_instance_label_alone_or_a_half_flux_mark_is_no_owner() {
        let kubectl = object(json!({"app.kubernetes.io/instance": "shop"}), json!({}), &["kubectl-client-side-apply"]);
        assert_eq!(owner_of(&kubectl), None, "the label is common; only Argo CD's controller makes it tracking");
        let half = object(json!({"kustomize.toolkit.fluxcd.io/name": "apps"}), json!({}), &[]);
        assert_eq!(owner_of(&half), None);
        let chart_without_release = object(json!({"app.kubernetes.io/managed-by": "Helm"}), json!({}), &[]);
        assert_eq!(owner_of(&chart_without_release), None);
    }
}
