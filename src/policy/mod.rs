//! Routing policy domain.
