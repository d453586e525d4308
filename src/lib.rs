//! plugsync: a declarative GitOps reconciler for containerised plugins.
//!
//! Pure rooms: [`model`], [`plan`], [`strategy`]. Edges: [`source`], [`backend`].
//! [`reconcile`] wires them together for one pass.

pub mod alert;
pub mod analysis;
pub mod backend;
pub mod daemon;
pub mod images;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod reconcile;
pub mod server;
pub mod source;
pub mod status;
pub mod strategy;
pub mod tls;
pub mod traffic;
