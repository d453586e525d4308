//! plugsync's pure rooms: what the fleet means ([`model`]), what differs and what a pass will
//! do ([`plan`]), how each rollout strategy steps ([`strategy`]), how a router splits traffic
//! ([`traffic`]), whether metrics pass ([`analysis`]), the fleet's generated catalogue
//! ([`catalogue`]) and the manifests made from a team's compose file ([`import`]).
//!
//! No I/O: no runtime, HTTP, engine or git client is a dependency of this crate, so the
//! compiler keeps these rooms pure. Time comes in as an argument.

pub mod analysis;
pub mod catalogue;
pub mod import;
pub mod model;
pub mod plan;
pub mod strategy;
pub mod traffic;
