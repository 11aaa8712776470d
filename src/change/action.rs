//! What a change does, as the audit log, the metrics and the Kubernetes Events name it.
use std::fmt;

use crate::authz::Permission;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    NamespaceCreate,
    WorkloadDeploy,
    WorkloadScale,
    WorkloadRemove,
    TutorialDeploy,
    TutorialReset,
    RouteUpdate,
    RouteDelete,
    RouteVersionServices,
    RouteMigrate,
    CanaryStart,
    CanaryPromote,
    CanaryPause,
    CanaryResume,
    CanaryAbort,
    CanaryFinish,
    CanaryScaleDown,
    Revert,
}

impl Action {
    pub const ALL: [Action; 18] = [
        Action::NamespaceCreate,
        Action::WorkloadDeploy,
        Action::WorkloadScale,
        Action::WorkloadRemove,
        Action::TutorialDeploy,
        Action::TutorialReset,
        Action::RouteUpdate,
        Action::RouteDelete,
        Action::RouteVersionServices,
        Action::RouteMigrate,
        Action::CanaryStart,
        Action::CanaryPromote,
        Action::CanaryPause,
        Action::CanaryResume,
        Action::CanaryAbort,
        Action::CanaryFinish,
        Action::CanaryScaleDown,
        Action::Revert,
    ];

    /// The name the audit log keeps (`route.update`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NamespaceCreate => "namespace.create",
            Action::WorkloadDeploy => "workload.deploy",
            Action::WorkloadScale => "workload.scale",
            Action::WorkloadRemove => "workload.remove",
            Action::TutorialDeploy => "tutorial.deploy",
            Action::TutorialReset => "tutorial.reset",
            Action::RouteUpdate => "route.update",
            Action::RouteDelete => "route.delete",
            Action::RouteVersionServices => "route.version-services",
            Action::RouteMigrate => "route.migrate",
            Action::CanaryStart => "canary.start",
            Action::CanaryPromote => "canary.promote",
            Action::CanaryPause => "canary.pause",
            Action::CanaryResume => "canary.resume",
            Action::CanaryAbort => "canary.abort",
            Action::CanaryFinish => "canary.finish",
            Action::CanaryScaleDown => "canary.scale-down",
            Action::Revert => "revert",
        }
    }

    /// The action an audit entry names; None for what signalbox did not do (outside changes).
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|action| action.as_str() == name)
    }

    /// What the action needs, and so what reverting it needs.
    pub fn permission(self) -> Permission {
        match self {
            Action::RouteUpdate | Action::RouteDelete | Action::RouteVersionServices | Action::RouteMigrate => {
                Permission::Route
            }
            Action::CanaryStart
            | Action::CanaryPromote
            | Action::CanaryPause
            | Action::CanaryResume
            | Action::CanaryAbort
            | Action::CanaryFinish
            | Action::CanaryScaleDown => Permission::Canary,
            Action::NamespaceCreate
            | Action::WorkloadDeploy
            | Action::WorkloadScale
            | Action::WorkloadRemove
            | Action::TutorialDeploy
            | Action::TutorialReset => Permission::Deploy,
            Action::Revert => Permission::Admin,
        }
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_name() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("kubectl.apply"), None);
    }
}
