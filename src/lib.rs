//! plugsync: a declarative GitOps reconciler for containerised plugins.
//!
//! Pure rooms live in the `plugsync-core` crate (no I/O dependency, so the compiler keeps
//! them pure) and are re-exported here: [`model`], [`plan`], [`strategy`], [`traffic`] and the
//! verdict side of [`analysis`]. Edges: [`source`], [`backend`], [`status`], [`alert`],
//! [`server`]. [`reconcile`] wires them together for one pass; [`daemon`] loops over it.

pub mod alert;
pub mod analysis;
pub mod backend;
pub mod daemon;
pub mod events;
pub mod images;
pub mod metrics;
pub mod reconcile;
pub mod server;
pub mod source;
pub mod status;
pub mod tls;

pub use plugsync_core::{catalogue, import, model, plan, strategy, traffic};
