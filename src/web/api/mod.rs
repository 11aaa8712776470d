//! The JSON API: the same change path as the pages.
pub mod audit;
pub mod audit_export;
pub mod canaries;
pub mod routes;
pub mod workloads;
