//! `plugsync rollout status PLUGIN [--watch] [--timeout 10m]`: where a plugin's rollout is,
//! from the daemon's API (`GET /api/v1/plugins/{id}`, `/api/v1/status`, `/api/v1/events`).
//!
//! Exit codes: 0 converged (or active), 1 rolled back or failed, 2 paused, 3 in progress
//! (without `--watch` only), 4 `--watch` timed out, 5 the daemon could not tell (unreachable,
//! unknown plugin, not the expected answer).
//!
//! Right after a `git push` the daemon may not have read the new revision yet, so what it
//! shows is the *old* state. `--watch` therefore takes what it sees on arrival as the
//! baseline and only ends on news about it:
//! - a `rollout` event that is progressing, that is stamped after the command started, or
//!   that comes after the first one the stream replayed (a replayed rollout that ended or
//!   paused before the command started is the baseline: said, not taken as the answer);
//! - a `status` document whose revision or desired version differs from the baseline's (the
//!   daemon read a new revision): crm's state there is the answer (its rollout events, if it
//!   had a rollout at that revision, came before the document), unless the plan holds crm
//!   (sync window …), which is said and waited out;
//! - once a rollout is followed, the next status document (written when the pass that ran it
//!   ends) settles it too, should its final event have been missed.
//!
//! Nothing arrives before `--timeout` → exit 4, saying what the daemon shows.

use super::api::{lifecycle_word, newer_rollout, Api, ApiError, DaemonEvent, Phase, RolloutEvent, StatusDoc};
use super::rollout_view::{verdict_line, View};
use super::sse::EventStream;
use plugsync::status::{Lifecycle, PluginStatus};
use std::process::ExitCode;
use std::time::Duration;

/// Exit code of `--watch` running out of time.
pub const TIMED_OUT: u8 = 4;
/// Exit code when the daemon could not tell.
pub const NO_ANSWER: u8 = 5;

/// How long the stream must be quiet before the replayed backlog is taken as complete.
const BACKLOG_QUIET: Duration = Duration::from_millis(400);

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Converged,
    RolledBack(String),
    Failed(String),
    Paused(String),
    InProgress(String),
}

impl Standing {
    pub fn exit_code(&self) -> u8 {
        match self {
            Standing::Converged => 0,
            Standing::RolledBack(_) | Standing::Failed(_) => 1,
            Standing::Paused(_) => 2,
            Standing::InProgress(_) => 3,
        }
    }

    fn line(&self, plugin: &str, version: &str) -> String {
        match self {
            Standing::Converged => format!("{plugin}: converged at {version}"),
            Standing::RolledBack(why) => format!("{plugin}: rolled back: {why}"),
            Standing::Failed(why) => format!("{plugin}: failed: {why}"),
            Standing::Paused(why) => {
                format!("{plugin}: paused: {why} (`plugsync rollout promote|resume|abort {plugin}` to go on)")
            }
            Standing::InProgress(what) => format!("{plugin}: rollout in progress: {what}"),
        }
    }
}

/// A rollout event's phase as a standing.
fn from_event(ev: &RolloutEvent) -> Standing {
    match ev.phase {
        Phase::Progressing => Standing::InProgress(ev.note.clone()),
        Phase::Paused => Standing::Paused(ev.note.clone()),
        Phase::Converged => Standing::Converged,
        Phase::RolledBack => Standing::RolledBack(ev.note.clone()),
        Phase::Failed => Standing::Failed(ev.note.clone()),
    }
}

/// What the status document says about a plugin (no rollout event newer than it).
fn from_status(p: &PluginStatus) -> Standing {
    if let Some(r) = &p.rollout {
        return match &r.paused {
            Some(why) => Standing::Paused(why.clone()),
            None => Standing::InProgress(r.note.clone().unwrap_or_else(|| format!("step {}", r.step + 1))),
        };
    }
    let why = || {
        p.failed
            .as_ref()
            .map(|f| f.reason.clone())
            .or_else(|| p.last_error.clone())
            .unwrap_or_else(|| lifecycle_word(p.state))
    };
    match p.state {
        Lifecycle::Active | Lifecycle::Installed | Lifecycle::Disabled | Lifecycle::Uninstalled => Standing::Converged,
        Lifecycle::RolledBack => Standing::RolledBack(why()),
        Lifecycle::Failed => Standing::Failed(why()),
        Lifecycle::Registered | Lifecycle::Installing | Lifecycle::Uninstalling => {
            Standing::InProgress(lifecycle_word(p.state).to_lowercase())
        }
    }
}

/// The plugin's standing from the last pass's status and the latest rollout event.
pub fn standing(doc: &StatusDoc, p: &PluginStatus, event: Option<&RolloutEvent>) -> Standing {
    match newer_rollout(doc, event) {
        Some(ev) => from_event(ev),
        None => from_status(p),
    }
}

/// "1.2.0" or "1.2.0 / canary 1.3.0": the versions running per slot (stable first).
pub fn versions(p: &PluginStatus) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(stable) = p.slots.get("stable") {
        parts.push(stable.version.clone());
    }
    parts.extend(p.slots.iter().filter(|(slot, _)| *slot != "stable").map(|(slot, s)| format!("{slot} {}", s.version)));
    if parts.is_empty() {
        return p.desired_version.clone().unwrap_or_else(|| "-".to_string());
    }
    parts.join(" / ")
}

fn short(revision: &str) -> &str {
    plugsync::model::short_revision(revision)
}

/// `rollout status` without `--watch`: one look, then the exit code of what it shows.
pub async fn once(server: &str, plugin: &str) -> Result<ExitCode, ApiError> {
    let api = Api::new(server);
    let mut p = api.plugin(plugin).await?;
    let mut doc = api.status().await?;
    let mut stream = EventStream::connect(&api, Some(plugin)).await?;
    let mut event: Option<RolloutEvent> = None;
    for e in stream.backlog(BACKLOG_QUIET, Duration::from_secs(5)).await? {
        match e {
            DaemonEvent::Status(newer) => {
                if let Some(q) = newer.plugins.get(plugin) {
                    p = q.clone();
                }
                doc = *newer;
            }
            DaemonEvent::Rollout(r) if r.plugin == plugin => event = Some(*r),
            _ => {}
        }
    }
    drop(stream);
    let standing = standing(&doc, &p, event.as_ref());
    println!(
        "{plugin}: {} {} at revision {} (last pass {})",
        lifecycle_word(p.state),
        versions(&p),
        p.revision.as_deref().map(short).unwrap_or("-"),
        doc.at
    );
    if let Some(ev) = newer_rollout(&doc, event.as_ref()) {
        let label = ev.step_label();
        println!("{plugin}: {} {} to {}: {} {label}", ev.strategy, ev.phase.word(), ev.version, ev.note);
        for (slot, v) in &ev.verdicts {
            println!("{plugin}:   {}", verdict_line(slot, v));
        }
    }
    if let Some(e) = &p.last_error {
        println!("{plugin}: last error: {e}");
    }
    println!("{}", standing.line(plugin, &versions(&p)));
    Ok(ExitCode::from(standing.exit_code()))
}

/// What the watch has seen so far.
struct Watcher<'a> {
    plugin: &'a str,
    started_ms: u64,
    /// The daemon's revision and the plugin's desired version on arrival.
    revision: String,
    desired: Option<String>,
    /// The last rollout event seen (a reconnect replays it).
    last: Option<RolloutEvent>,
    /// The last status seen, as (pass start, revision, the plugin's entry): a reconnect
    /// replays it, and a replayed status from before a running rollout settles nothing.
    seen: (String, String, Option<PluginStatus>),
    following: bool,
    hold: Option<String>,
    /// The plugin's versions, for the closing line.
    versions: String,
}

enum Next {
    Wait,
    Done(Standing),
}

impl Watcher<'_> {
    fn on_rollout(&mut self, ev: RolloutEvent, view: &mut View) -> Next {
        // Another plugin's, the one seen last (replayed on a reconnect), or older than it.
        let stale = self.last.as_ref().is_some_and(|l| *l == ev || ev.at_ms < l.at_ms);
        if ev.plugin != self.plugin || stale {
            return Next::Wait;
        }
        // The replayed state from before this command (a rollout that ended, or one that
        // paused and waits): not news, whatever it says.
        let replayed = self.last.is_none() && ev.phase != Phase::Progressing && ev.at_ms < self.started_ms;
        if !self.following && replayed {
            let ago = self.started_ms.saturating_sub(ev.at_ms) / 1000;
            let what = if ev.phase.is_final() { "the next one" } else { "it to go on" };
            let note =
                if ev.note.is_empty() || ev.note == ev.phase.word() { String::new() } else { format!(": {}", ev.note) };
            view.say(&format!(
                "{}: its last rollout (to {}) {} {ago}s before this command{note}; waiting for {what}",
                self.plugin,
                ev.version,
                ev.phase.word(),
            ));
            self.last = Some(ev);
            return Next::Wait;
        }
        self.following = true;
        view.rollout(&ev);
        self.versions = ev.version.clone();
        let next = match ev.phase {
            Phase::Progressing => Next::Wait,
            _ => Next::Done(from_event(&ev)),
        };
        self.last = Some(ev);
        next
    }

    fn on_status(&mut self, doc: &StatusDoc, view: &mut View) -> Next {
        let seen = (doc.at.clone(), doc.revision.clone(), doc.plugins.get(self.plugin).cloned());
        if seen == self.seen {
            return Next::Wait;
        }
        self.seen = seen;
        let Some(p) = doc.plugins.get(self.plugin) else { return Next::Wait };
        self.versions = versions(p);
        if self.following {
            // The pass that ran the rollout has ended: its status settles it.
            let standing = from_status(p);
            return match standing {
                Standing::InProgress(_) => Next::Wait,
                s => Next::Done(s),
            };
        }
        let changed = doc.revision != self.revision || p.desired_version != self.desired;
        if !changed {
            return Next::Wait;
        }
        if let Some(reason) = doc.held(self.plugin) {
            if self.hold.as_deref() != Some(reason) {
                view.say(&format!("{}: held at revision {}: {reason}", self.plugin, short(&doc.revision)));
                self.hold = Some(reason.to_string());
            }
            return Next::Wait;
        }
        match from_status(p) {
            Standing::InProgress(_) => {
                self.following = p.rollout.is_some();
                Next::Wait
            }
            s => {
                view.say(&format!(
                    "{}: the daemon read revision {}: {} {}, no rollout",
                    self.plugin,
                    short(&doc.revision),
                    lifecycle_word(p.state),
                    versions(p)
                ));
                Next::Done(s)
            }
        }
    }

    fn timed_out(&self, timeout: Duration) -> String {
        let what = if self.following {
            match &self.last {
                Some(ev) => format!("its rollout to end ({} {})", ev.step_label(), ev.phase.word()),
                None => "its rollout to end".to_string(),
            }
        } else {
            format!(
                "a rollout to start (the daemon is at revision {}, {} desired {})",
                short(&self.revision),
                self.plugin,
                self.desired.as_deref().unwrap_or("-")
            )
        };
        format!("timed out after {} waiting for {what}", humantime(timeout))
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `rollout status --watch`: follows the plugin's rollout until it ends (see the module doc).
pub async fn watch(server: &str, plugin: &str, timeout: Duration) -> Result<ExitCode, ApiError> {
    let started_ms = now_ms();
    let deadline = tokio::time::Instant::now() + timeout;
    let api = Api::new(server);
    let p = api.plugin(plugin).await?;
    let doc = api.status().await?;
    let p = doc.plugins.get(plugin).cloned().unwrap_or(p);
    let mut view = View::for_stdout();
    view.say(&format!(
        "{plugin}: {} {} at revision {}; watching its rollout (up to {})",
        lifecycle_word(p.state),
        versions(&p),
        short(&doc.revision),
        humantime(timeout)
    ));
    let mut watcher = Watcher {
        plugin,
        started_ms,
        revision: doc.revision.clone(),
        desired: p.desired_version.clone(),
        last: None,
        seen: (doc.at.clone(), doc.revision.clone(), Some(p.clone())),
        following: false,
        hold: None,
        versions: versions(&p),
    };
    let mut stream = EventStream::connect(&api, Some(plugin)).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                eprintln!("{plugin}: {}", watcher.timed_out(timeout));
                return Ok(ExitCode::from(TIMED_OUT));
            }
            _ = tick.tick() => {
                view.tick(now_ms());
                continue;
            }
            next = stream.next() => next,
        };
        let next = match event {
            Ok(Some(DaemonEvent::Rollout(ev))) => watcher.on_rollout(*ev, &mut view),
            Ok(Some(DaemonEvent::Status(doc))) => watcher.on_status(&doc, &mut view),
            Ok(Some(DaemonEvent::Log { line })) => {
                view.log(&line);
                Next::Wait
            }
            Ok(Some(DaemonEvent::Lagged(n))) => {
                view.say(&format!("{plugin}: fell behind the daemon's events ({n} missed); going on"));
                Next::Wait
            }
            Ok(Some(DaemonEvent::Other)) => Next::Wait,
            Ok(None) | Err(ApiError::Read { .. }) => {
                view.say(&format!("{plugin}: the event stream {} ended; reconnecting", stream.url));
                stream = reconnect(&api, plugin, deadline).await?;
                Next::Wait
            }
            Err(e) => return Err(e),
        };
        if let Next::Done(standing) = next {
            view.finish(&standing.line(plugin, &watcher.versions));
            return Ok(ExitCode::from(standing.exit_code()));
        }
    }
}

/// Connects again, once a second, until `deadline`; the last error after it.
async fn reconnect(api: &Api, plugin: &str, deadline: tokio::time::Instant) -> Result<EventStream, ApiError> {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match EventStream::connect(api, Some(plugin)).await {
            Ok(stream) => return Ok(stream),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugsync::status::book::{RolloutProgress, SlotStatus};

    fn plugin(state: Lifecycle) -> PluginStatus {
        PluginStatus {
            plugin: "crm".into(),
            state,
            desired_version: Some("1.1.0".into()),
            strategy: Some("Canary".into()),
            revision: None,
            slots: Default::default(),
            last_change: None,
            failed: None,
            last_error: Some("error rate 30 %".into()),
            rollout: None,
            applied: None,
            drift: None,
        }
    }

    #[test]
    fn the_status_alone_gives_the_exit_code() {
        assert_eq!(from_status(&plugin(Lifecycle::Active)).exit_code(), 0);
        assert_eq!(from_status(&plugin(Lifecycle::RolledBack)), Standing::RolledBack("error rate 30 %".into()));
        assert_eq!(from_status(&plugin(Lifecycle::Failed)).exit_code(), 1);
        assert_eq!(from_status(&plugin(Lifecycle::Installing)).exit_code(), 3);
        let mut paused = plugin(Lifecycle::Installing);
        paused.rollout = Some(RolloutProgress {
            target: "abc".into(),
            step: 0,
            paused: Some("error rate".into()),
            promoted: false,
            note: None,
        });
        assert_eq!(from_status(&paused).exit_code(), 2);
    }

    #[test]
    fn versions_per_slot() {
        let mut p = plugin(Lifecycle::Active);
        assert_eq!(versions(&p), "1.1.0", "no slots: the desired version");
        p.slots.insert("stable".into(), SlotStatus { version: "1.2.0".into(), instances: 3, digest: None });
        p.slots.insert("canary".into(), SlotStatus { version: "1.3.0".into(), instances: 1, digest: None });
        assert_eq!(versions(&p), "1.2.0 / canary 1.3.0");
    }

    #[test]
    fn durations_read_like_flags() {
        let cases = [(10, "10s"), (600, "10m"), (90, "1m30s"), (3_700, "1h1m")];
        for (secs, want) in cases {
            assert_eq!(humantime(Duration::from_secs(secs)), want);
        }
    }
}
