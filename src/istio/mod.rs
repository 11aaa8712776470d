//! Typed Istio resources.
