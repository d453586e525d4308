//! What a rollout remembers between passes of the daemon: its state (a paused canary stays
//! paused) and the commands people sent while it ran.

use crate::events::{EventBus, RolloutLive};
use crate::strategy::{Control, RolloutState};
use crate::traffic::Splits;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct RolloutMemory {
    /// plugin → (target spec hash, state)
    states: Mutex<BTreeMap<String, (String, RolloutState)>>,
    controls: Mutex<BTreeMap<String, VecDeque<Control>>>,
    /// Rollouts' traffic splits behind the router (a paused canary keeps its weight).
    pub splits: Mutex<Splits>,
    /// Where rollouts' progress goes for people watching (the daemon's event stream).
    events: Option<Arc<EventBus>>,
}

impl RolloutMemory {
    pub fn with_events(events: Arc<EventBus>) -> Self {
        RolloutMemory { events: Some(events), ..Default::default() }
    }

    /// A rollout's progress, for whoever watches.
    pub fn publish(&self, live: RolloutLive) {
        if let Some(events) = &self.events {
            events.rollout(live);
        }
    }

    /// The remembered state of `plugin`'s rollout towards `hash`, if that is the one running.
    pub fn state(&self, plugin: &str, hash: &str) -> Option<RolloutState> {
        let states = self.states.lock().ok()?;
        states.get(plugin).filter(|(h, _)| h == hash).map(|(_, s)| s.clone())
    }

    pub fn remember(&self, plugin: &str, hash: &str, state: &RolloutState) {
        if let Ok(mut states) = self.states.lock() {
            states.insert(plugin.to_string(), (hash.to_string(), state.clone()));
        }
    }

    pub fn forget(&self, plugin: &str) {
        if let Ok(mut states) = self.states.lock() {
            states.remove(plugin);
        }
    }

    /// Every remembered rollout (for status).
    pub fn all(&self) -> BTreeMap<String, (String, RolloutState)> {
        self.states.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn push_control(&self, plugin: &str, control: Control) {
        if let Ok(mut controls) = self.controls.lock() {
            controls.entry(plugin.to_string()).or_default().push_back(control);
        }
    }

    pub fn take_control(&self, plugin: &str) -> Option<Control> {
        self.controls.lock().ok()?.get_mut(plugin)?.pop_front()
    }
}
