//! The command line: one module per command that needs more than a few lines.

pub mod admission;
pub mod api;
pub mod apply;
pub mod daemon;
pub mod demo;
pub mod demo_router;
pub mod docs;
pub mod get;
pub mod import;
pub mod rollout_status;
pub mod rollout_view;
pub mod sse;
pub mod validate;
