//! How `plugsync rollout status --watch` shows a rollout: on a terminal, one `indicatif` bar
//! per step (weights from the event's `steps`; passed steps full, the current one filling
//! with its elapsed time against the previous step's length) and below them the note, the
//! traffic split, each watched slot's verdict with its metric values and the A/B summary;
//! elsewhere (a pipe, a file, a test) plain lines, one per change.

use super::api::{number, Phase, RolloutEvent, ShareDoc, VerdictDoc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;

/// Positions of a step bar (fine enough for a smooth fill).
const BAR_LENGTH: u64 = 1000;

/// "canary pass: 41 requests, error rate 0.00%, success rate 100.00%, p99 12 ms, 5.1 req/s (…)".
pub fn verdict_line(slot: &str, v: &VerdictDoc) -> String {
    let opt = |value: Option<f64>, show: &dyn Fn(f64) -> String| value.map_or_else(|| "-".to_string(), show);
    let mut line = format!(
        "{slot} {}: {} requests, error rate {}, success rate {}, p99 {}",
        v.verdict,
        opt(v.requests, &|r| format!("{r:.0}")),
        opt(v.error_rate, &|r| format!("{r:.2}%")),
        opt(v.success_rate, &|r| format!("{r:.2}%")),
        opt(v.p99_ms, &|p| format!("{p:.0} ms")),
    );
    if let Some(t) = v.throughput {
        line += &format!(", {t:.1} req/s");
    }
    if !v.text.is_empty() {
        line += &format!(" ({})", v.text);
    }
    line
}

/// "stable 75% · canary 25%".
pub fn shares_line(shares: &[ShareDoc]) -> String {
    shares.iter().map(|s| format!("{} {}%", s.slot, number(s.percent))).collect::<Vec<_>>().join(" · ")
}

/// "Canary rollout of crm to 1.1.0 (target 3f2a…), steps 25% → 50% → 100%".
pub fn header(ev: &RolloutEvent) -> String {
    let mut line = format!("{} rollout of {} to {}", ev.strategy, ev.plugin, ev.version);
    if !ev.target.is_empty() {
        line += &format!(" (target {})", ev.target);
    }
    if !ev.steps.is_empty() {
        let steps: Vec<String> = ev.steps.iter().map(|w| format!("{}%", number(*w))).collect();
        line += &format!(", steps {}", steps.join(" → "));
    }
    line
}

/// When each step of the rollout being shown began (as the daemon says, else when this watch
/// first saw it) and how long a step lasts (as the policy says, else as the last one did), to
/// fill the current step's bar.
#[derive(Debug, Default)]
pub struct StepClock {
    target: String,
    first_seen: BTreeMap<usize, u64>,
    period: Option<u64>,
}

impl StepClock {
    pub fn observe(&mut self, ev: &RolloutEvent) {
        if ev.target != self.target {
            self.target = ev.target.clone();
            self.first_seen.clear();
        }
        match ev.step_started_ms {
            Some(started) => {
                self.first_seen.insert(ev.step, started);
            }
            None => {
                self.first_seen.entry(ev.step).or_insert(ev.at_ms);
            }
        }
        self.period = ev.step_period_ms.filter(|p| *p > 0);
    }

    /// Milliseconds the step has run at `now_ms` (since this watch first saw it).
    pub fn elapsed(&self, step: usize, now_ms: u64) -> Option<u64> {
        self.first_seen.get(&step).map(|t| now_ms.saturating_sub(*t))
    }

    /// How long the last step that ended before `step` took: what `step` should take too.
    pub fn expected(&self, step: usize) -> Option<u64> {
        if self.period.is_some() {
            return self.period;
        }
        let before: Vec<(&usize, &u64)> = self.first_seen.range(..=step).collect();
        match before.as_slice() {
            [.., (_, a), (_, b)] => Some(b.saturating_sub(**a)).filter(|d| *d > 0),
            _ => None,
        }
    }
}

/// Plain lines, one per change.
#[derive(Debug, Default)]
pub struct Plain {
    target: String,
    step: Option<(usize, Phase)>,
    note: String,
    shares: String,
    verdicts: BTreeMap<String, String>,
    ab: String,
}

impl Plain {
    /// The lines `ev` adds to what was printed before.
    pub fn lines(&mut self, ev: &RolloutEvent) -> Vec<String> {
        let p = &ev.plugin;
        let mut out = Vec::new();
        if ev.target != self.target {
            *self = Plain { target: ev.target.clone(), ..Plain::default() };
            out.push(format!("{p}: {}", header(ev)));
        }
        if self.step != Some((ev.step, ev.phase)) && !ev.phase.is_final() {
            self.step = Some((ev.step, ev.phase));
            let label = ev.step_label();
            out.push(format!("{p}: {label}{}{}", if label.is_empty() { "" } else { " " }, ev.phase.word()));
        }
        if ev.note != self.note && !ev.phase.is_final() {
            self.note = ev.note.clone();
            out.push(format!("{p}:   {}", ev.note));
        }
        if ev.phase.is_final() {
            return out; // the closing line says how it ended; its verdicts are of an empty window
        }
        let shares = shares_line(&ev.shares);
        if !shares.is_empty() && shares != self.shares {
            out.push(format!("{p}:   shares {shares}"));
            self.shares = shares;
        }
        for (slot, v) in &ev.verdicts {
            let line = verdict_line(slot, v);
            if self.verdicts.get(slot) != Some(&line) {
                out.push(format!("{p}:   {line}"));
                self.verdicts.insert(slot.clone(), line);
            }
        }
        if let Some(ab) = &ev.ab {
            let line = ab_line(ab);
            if line != self.ab {
                out.push(format!("{p}:   {line}"));
                self.ab = line;
            }
        }
        out
    }
}

fn ab_line(ab: &super::api::AbDoc) -> String {
    let winner = match (&ab.winner, ab.inconclusive) {
        (Some(w), _) => format!(" (winner {w})"),
        (None, true) => " (inconclusive)".to_string(),
        (None, false) => String::new(),
    };
    format!("A/B: {}{winner}", ab.summary)
}

/// Bars on a terminal.
pub struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    steps: Vec<ProgressBar>,
    details: ProgressBar,
    clock: StepClock,
    current: Option<RolloutEvent>,
}

fn text_bar(multi: &MultiProgress) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    multi.add(ProgressBar::new(1).with_style(style))
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let header = text_bar(&multi);
        let details = text_bar(&multi);
        Bars { multi, header, steps: Vec::new(), details, clock: StepClock::default(), current: None }
    }

    fn rebuild_steps(&mut self, ev: &RolloutEvent) {
        for bar in self.steps.drain(..) {
            self.multi.remove(&bar);
        }
        let style = ProgressStyle::with_template("  {prefix:>12} [{bar:32.cyan/blue}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▉▊▋▌▍▎▏ ");
        let count = ev.steps.len().max(1);
        for i in 0..count {
            let prefix = match ev.steps.get(i) {
                Some(w) => format!("step {} {:>3}%", i + 1, number(*w)),
                None => ev.strategy.clone(),
            };
            let bar = ProgressBar::new(BAR_LENGTH).with_style(style.clone()).with_prefix(prefix);
            self.steps.push(self.multi.insert_before(&self.details, bar));
        }
    }

    fn rollout(&mut self, ev: &RolloutEvent) {
        let new_target = self.current.as_ref().is_none_or(|c| c.target != ev.target || c.steps != ev.steps);
        if new_target {
            self.rebuild_steps(ev);
        }
        self.clock.observe(ev);
        self.header.set_message(format!("{}: {} — {}", ev.plugin, header(ev), ev.phase.word()));
        self.details.set_message(details(ev));
        self.current = Some(ev.clone());
        self.draw_steps(ev.at_ms);
    }

    fn draw_steps(&self, now_ms: u64) {
        let Some(ev) = &self.current else { return };
        let steps = ev.steps.len().max(1);
        for (i, bar) in self.steps.iter().enumerate() {
            let done = i < ev.step || (ev.phase == Phase::Converged && i < steps);
            if done {
                bar.set_position(BAR_LENGTH);
                bar.set_message("passed");
            } else if i == ev.step {
                let elapsed = self.clock.elapsed(i, now_ms).unwrap_or(0);
                let (position, message) = match self.clock.expected(i) {
                    Some(expected) => (
                        (elapsed * BAR_LENGTH / expected).min(BAR_LENGTH * 95 / 100),
                        format!("{} {:.1}s of ~{:.1}s", ev.phase.word(), secs(elapsed), secs(expected)),
                    ),
                    None => (BAR_LENGTH / 20, format!("{} {:.1}s (current)", ev.phase.word(), secs(elapsed))),
                };
                bar.set_position(position);
                bar.set_message(message);
            } else {
                bar.set_position(0);
                bar.set_message("");
            }
        }
    }

    fn finish(&self, line: &str) {
        for bar in self.steps.iter().chain([&self.header, &self.details]) {
            bar.finish();
        }
        // Every bar is finished: nothing redraws, the line goes below them.
        println!("{line}");
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The lines under the bars: note, split, verdicts, A/B.
fn details(ev: &RolloutEvent) -> String {
    let mut lines = Vec::new();
    if !ev.note.is_empty() {
        lines.push(format!("  {}", ev.note));
    }
    let shares = shares_line(&ev.shares);
    if !shares.is_empty() {
        lines.push(format!("  shares {shares}"));
    }
    lines.extend(ev.verdicts.iter().map(|(slot, v)| format!("  {}", verdict_line(slot, v))));
    if let Some(ab) = &ev.ab {
        lines.push(format!("  {}", ab_line(ab)));
    }
    lines.join("\n")
}

/// Where the watch writes.
pub enum View {
    Plain(Plain),
    Bars(Box<Bars>),
}

impl View {
    /// Bars when stdout is a terminal, plain lines otherwise.
    pub fn for_stdout() -> View {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            View::Bars(Box::new(Bars::new()))
        } else {
            View::Plain(Plain::default())
        }
    }

    /// A line of its own (waiting, a hold, a lagged stream).
    pub fn say(&mut self, line: &str) {
        match self {
            View::Plain(_) => println!("{line}"),
            View::Bars(b) => {
                let _ = b.multi.println(line);
            }
        }
    }

    pub fn rollout(&mut self, ev: &RolloutEvent) {
        match self {
            View::Plain(p) => {
                for line in p.lines(ev) {
                    println!("{line}");
                }
            }
            View::Bars(b) => b.rollout(ev),
        }
    }

    /// A line of the daemon's narration (on a terminal only: plain output stays one line
    /// per change of the rollout).
    pub fn log(&mut self, line: &str) {
        if let View::Bars(b) = self {
            let _ = b.multi.println(format!("  · {line}"));
        }
    }

    /// Redraws the current step's fill.
    pub fn tick(&mut self, now_ms: u64) {
        if let View::Bars(b) = self {
            b.draw_steps(now_ms);
        }
    }

    /// The closing line; the bars stay as they ended.
    pub fn finish(&mut self, line: &str) {
        match self {
            View::Plain(_) => println!("{line}"),
            View::Bars(b) => b.finish(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: usize, phase: Phase, at_ms: u64) -> RolloutEvent {
        RolloutEvent {
            plugin: "crm".into(),
            slot: "stable".into(),
            strategy: "Canary".into(),
            version: "1.1.0".into(),
            target: "abc".into(),
            step,
            steps: vec![25.0, 50.0, 100.0],
            shares: vec![],
            phase,
            note: format!("note {step}"),
            verdicts: BTreeMap::new(),
            ab: None,
            started_ms: Some(0),
            step_started_ms: None,
            step_period_ms: None,
            at_ms,
        }
    }

    fn verdict(requests: f64) -> VerdictDoc {
        VerdictDoc {
            verdict: "pass".into(),
            text: String::new(),
            requests: Some(requests),
            error_rate: Some(0.0),
            success_rate: Some(100.0),
            p99_ms: Some(12.4),
            throughput: None,
        }
    }

    #[test]
    fn plain_lines_say_each_change_once() {
        let mut plain = Plain::default();
        let first = plain.lines(&event(0, Phase::Progressing, 1));
        assert_eq!(
            first,
            [
                "crm: Canary rollout of crm to 1.1.0 (target abc), steps 25% → 50% → 100%",
                "crm: step 1/3 25% progressing",
                "crm:   note 0"
            ]
        );
        assert!(plain.lines(&event(0, Phase::Progressing, 2)).is_empty(), "nothing changed");
        let mut with_verdict = event(0, Phase::Progressing, 3);
        with_verdict.verdicts.insert("canary".into(), verdict(41.0));
        with_verdict.shares =
            vec![ShareDoc { slot: "stable".into(), percent: 75.0 }, ShareDoc { slot: "canary".into(), percent: 25.0 }];
        assert_eq!(
            plain.lines(&with_verdict),
            [
                "crm:   shares stable 75% · canary 25%",
                "crm:   canary pass: 41 requests, error rate 0.00%, success rate 100.00%, p99 12 ms"
            ]
        );
        let next = plain.lines(&event(1, Phase::Progressing, 4));
        assert_eq!(next, ["crm: step 2/3 50% progressing", "crm:   note 1"]);
        assert!(plain.lines(&event(3, Phase::Converged, 5)).is_empty(), "the end is the closing line's");
    }

    #[test]
    fn the_step_clock_expects_the_last_step_length() {
        let mut clock = StepClock::default();
        clock.observe(&event(0, Phase::Progressing, 1_000));
        assert_eq!(clock.expected(0), None);
        clock.observe(&event(1, Phase::Progressing, 5_000));
        clock.observe(&event(1, Phase::Progressing, 6_000));
        assert_eq!((clock.expected(1), clock.elapsed(1, 7_500)), (Some(4_000), Some(2_500)));
        let mut other = event(0, Phase::Progressing, 9_000);
        other.target = "def".into();
        clock.observe(&other);
        assert_eq!(clock.expected(1), None, "a new rollout starts afresh");
    }

    #[test]
    fn the_step_clock_takes_the_daemons_start_and_period_when_given() {
        let mut clock = StepClock::default();
        let mut ev = event(1, Phase::Progressing, 9_000);
        ev.step_started_ms = Some(5_000);
        ev.step_period_ms = Some(6_000);
        clock.observe(&ev);
        assert_eq!((clock.expected(1), clock.elapsed(1, 8_000)), (Some(6_000), Some(3_000)));
    }
}
