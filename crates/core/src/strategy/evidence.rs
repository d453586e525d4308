//! What the executor measured for a strategy, and what people asked for. Plain data, so the
//! strategies stay pure.

use crate::plan::Slot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::analysis::verdict::{Variant, Verdict};

/// An A/B comparison over the test window.
#[derive(Debug, Clone, PartialEq)]
pub struct AbResult {
    pub winner: Option<Variant>,
    pub inconclusive: bool,
    pub summary: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The analysis window these results belong to (`RolloutState::window`).
    pub window: u32,
    pub verdicts: BTreeMap<Slot, Verdict>,
    /// The metric values each verdict was judged on (for people watching; strategies decide
    /// from the verdicts).
    pub metrics: BTreeMap<Slot, crate::analysis::SlotMetrics>,
    /// Smoke tests of `RolloutState::smoke`: `Err` names the failing path and instance.
    pub smoke: Option<Result<(), String>>,
    pub ab: Option<AbResult>,
}

impl Evidence {
    /// This slot's verdict, only if it belongs to `window`.
    pub fn verdict(&self, window: u32, slot: Slot) -> Option<&Verdict> {
        (self.window == window).then(|| self.verdicts.get(&slot)).flatten()
    }
}

/// A person's command (HTTP API / `plugsync rollout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    Promote,
    Abort,
    Pause,
    Resume,
}
