//! Threshold evaluation (canary, blue-green) and A/B decisions. Pure.
//!
//! Measured rates are percent (1 = 1 %), latency in milliseconds; configured rates are
//! [`Rate`]s, compared in percent.

use super::counters::SlotMetrics;
use crate::model::policy::Thresholds;
use crate::model::Rate;
use std::collections::BTreeMap;
use std::fmt;

/// Requests a window needs before it can pass, unless the policy's `analysis.minSamples`
/// says otherwise.
pub const DEFAULT_MIN_SAMPLES: u64 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every configured threshold held; `summary` is [`summary`] of the metrics.
    Pass { summary: String },
    /// A threshold was broken; `reason` names the metric, its value and the threshold.
    Fail { reason: String },
    /// Not enough evidence either way (too few requests, a metric nobody could measure).
    Inconclusive { reason: String },
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass { .. })
    }
    pub fn is_fail(&self) -> bool {
        matches!(self, Verdict::Fail { .. })
    }
    /// The summary, reason or explanation, whichever the verdict carries.
    pub fn text(&self) -> &str {
        match self {
            Verdict::Pass { summary } => summary,
            Verdict::Fail { reason } | Verdict::Inconclusive { reason } => reason,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass { summary } => write!(f, "pass ({summary})"),
            Verdict::Fail { reason } => write!(f, "fail: {reason}"),
            Verdict::Inconclusive { reason } => write!(f, "inconclusive: {reason}"),
        }
    }
}

/// A number for people: no trailing zeros, one decimal from 1 up, two below.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "∞".into()
        } else {
            "-∞".into()
        };
    }
    let decimals = if v.abs() >= 1.0 || v == 0.0 { 1 } else { 2 };
    let text = format!("{v:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

/// "12 s", "2.5 min", "1.5 h": the length of a window.
fn duration(seconds: f64) -> String {
    if seconds >= 5400.0 {
        format!("{} h", num(seconds / 3600.0))
    } else if seconds >= 90.0 {
        format!("{} min", num(seconds / 60.0))
    } else {
        format!("{} s", num(seconds))
    }
}

/// One line for status commits and logs: "error rate 0.4%, p99 212 ms, 12.5 req/s".
/// Metrics nobody measured are left out; scrape failures are mentioned.
pub fn summary(m: &SlotMetrics) -> String {
    let mut parts = Vec::new();
    if m.requests_counted && m.requests <= 0.0 {
        parts.push(if m.seconds > 0.0 {
            format!("no requests in {}", duration(m.seconds))
        } else {
            "no requests".to_string()
        });
    }
    if let Some(e) = m.error_rate {
        parts.push(format!("error rate {}%", num(e)));
    } else if let Some(s) = m.success_rate {
        parts.push(format!("success rate {}%", num(s)));
    }
    if let Some(p) = m.p99_ms {
        parts.push(format!("p99 {} ms", num(p.round())));
    }
    if let Some(t) = m.throughput {
        if m.requests > 0.0 || !m.requests_counted {
            parts.push(format!("{} req/s", num(t)));
        }
    }
    match m.scrape_failures {
        0 => {}
        1 => parts.push("1 scrape failed".into()),
        n => parts.push(format!("{n} scrapes failed")),
    }
    if parts.is_empty() {
        "no metrics".into()
    } else {
        parts.join(", ")
    }
}

/// Checks a slot's metrics against the thresholds.
///
/// - Fewer than `min_samples` counted requests → `Inconclusive` ("only 7 requests in 30 s,
///   need 20"), whatever the numbers say: never `Pass`, never `Fail`, on so little.
/// - Any threshold broken → `Fail`, naming every broken one ("error rate 31.2 % > 1 %").
/// - A configured threshold whose metric is unknown (no histogram, Prometheus returned
///   nothing) → `Inconclusive`: a threshold nobody checked does not hold.
/// - Otherwise `Pass`, also when no threshold is configured.
///
/// When the request count is not known (`requests_counted == false`, Prometheus without a
/// `requests` query) the sample gate cannot apply; then a Pass needs at least one
/// configured threshold, all of them measured.
pub fn evaluate(m: &SlotMetrics, t: &Thresholds, min_samples: u64) -> Verdict {
    if m.requests_counted && m.requests < min_samples as f64 {
        let mut reason = format!(
            "only {} request{} in {}, need {min_samples}",
            num(m.requests.max(0.0).round()),
            if m.requests.round() == 1.0 { "" } else { "s" },
            duration(m.seconds)
        );
        if m.scrape_failures > 0 {
            reason.push_str(&format!(
                " ({} scrape{} failed)",
                m.scrape_failures,
                if m.scrape_failures == 1 { "" } else { "s" }
            ));
        }
        return Verdict::Inconclusive { reason };
    }
    let mut broken = Vec::new();
    let mut unknown = Vec::new();
    if let Some(max) = t.max_error_rate.map(Rate::percent) {
        match m.error_rate {
            Some(v) if v > max => broken.push(format!("error rate {} % > {} %", num(v), num(max))),
            Some(_) => {}
            None => unknown.push("error rate"),
        }
    }
    if let Some(max) = t.max_latency_p99_ms {
        match m.p99_ms {
            Some(v) if v > max => broken.push(format!("p99 latency {} ms > {} ms", num(v.round()), num(max))),
            Some(_) => {}
            None => unknown.push("p99 latency"),
        }
    }
    if let Some(min) = t.min_success_rate.map(Rate::percent) {
        match m.success_rate {
            Some(v) if v < min => broken.push(format!("success rate {} % < {} %", num(v), num(min))),
            Some(_) => {}
            None => unknown.push("success rate"),
        }
    }
    if !broken.is_empty() {
        return Verdict::Fail { reason: broken.join(", ") };
    }
    if !unknown.is_empty() {
        return Verdict::Inconclusive { reason: format!("{} unknown ({})", unknown.join(" and "), summary(m)) };
    }
    let configured = t.max_error_rate.is_some() || t.max_latency_p99_ms.is_some() || t.min_success_rate.is_some();
    if !m.requests_counted && !configured {
        return Verdict::Inconclusive {
            reason: "request count unknown and no threshold configured (add a `requests` query)".into(),
        };
    }
    Verdict::Pass { summary: summary(m) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    A,
    B,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::A => "A",
            Variant::B => "B",
        })
    }
}

/// The outcome of an A/B comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct AbDecision {
    /// `None`: no variant won (tie, no metric differed enough, or inconclusive); the
    /// incumbent A stays.
    pub winner: Option<Variant>,
    /// Per decision metric: its name, the variant it favours (only when the difference
    /// reaches the winner threshold) and a sentence saying why.
    pub per_metric: Vec<(String, Option<Variant>, String)>,
    /// Too few requests in either variant: no winner, whatever the metrics say.
    pub inconclusive: bool,
}

impl AbDecision {
    /// One line: "B wins (latency: …; errorRate: …)" or "no winner (…)".
    pub fn explain(&self) -> String {
        let head = match (self.inconclusive, self.winner) {
            (true, _) => "inconclusive".to_string(),
            (false, Some(v)) => format!("{v} wins"),
            (false, None) => "no winner, A stays".to_string(),
        };
        let details: Vec<&str> = self.per_metric.iter().map(|(_, _, why)| why.as_str()).collect();
        if details.is_empty() {
            head
        } else {
            format!("{head} ({})", details.join("; "))
        }
    }
}

/// How a decision metric compares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

fn builtin_metric(m: &SlotMetrics, name: &str) -> Option<(Option<f64>, Better, &'static str)> {
    match name {
        "latency" | "p99" | "latencyP99" => Some((m.p99_ms, Better::Lower, " ms")),
        "errorRate" => Some((m.error_rate, Better::Lower, " %")),
        "successRate" => Some((m.success_rate, Better::Higher, " %")),
        "throughput" => Some((m.throughput, Better::Higher, " req/s")),
        _ => None,
    }
}

const EPSILON: f64 = 1e-9;

/// Decides an A/B test.
///
/// For each decision metric: `latency` (p99, lower is better), `errorRate` (lower),
/// `successRate` (higher), `throughput` (higher); any other name is looked up in `extra`
/// (values for A and B from Prometheus queries) and is taken as **higher is better**
/// (conversions, revenue; write the query so that this holds, e.g. negate a cost). A metric
/// counts for a variant only when the relative difference `|b−a| / max(|a|, ε)` reaches
/// `winner_threshold_percent`. The variant that more counting metrics favour wins; a tie,
/// or no counting metric, gives no winner (A stays). Fewer than `min_samples` counted
/// requests in either variant → inconclusive, no winner.
// Long: one comparison per decision metric and the winner rule, kept together to read as the policy.
pub fn ab_decide(
    a: &SlotMetrics,
    b: &SlotMetrics,
    metrics: &[String],
    extra: &BTreeMap<String, (f64, f64)>,
    winner_threshold_percent: f64,
    min_samples: u64,
) -> AbDecision {
    let threshold = if winner_threshold_percent.is_finite() { winner_threshold_percent.max(0.0) } else { 0.0 };
    let mut per_metric = Vec::new();
    for name in metrics {
        let (va, vb, better, unit) = match builtin_metric(a, name) {
            Some((va, better, unit)) => {
                let vb = builtin_metric(b, name).and_then(|x| x.0);
                (va, vb, better, unit)
            }
            None => match extra.get(name) {
                Some(&(x, y)) => {
                    (Some(x).filter(|v| v.is_finite()), Some(y).filter(|v| v.is_finite()), Better::Higher, "")
                }
                None => {
                    per_metric.push((name.clone(), None, format!("{name}: no provider for this metric")));
                    continue;
                }
            },
        };
        let (va, vb) = match (va, vb) {
            (Some(x), Some(y)) => (x, y),
            (x, y) => {
                let missing = match (x, y) {
                    (None, None) => "A and B",
                    (None, _) => "A",
                    _ => "B",
                };
                per_metric.push((name.clone(), None, format!("{name}: no value for {missing}")));
                continue;
            }
        };
        let relative = (vb - va).abs() / va.abs().max(EPSILON) * 100.0;
        let values = format!("{name}: A {}{unit}, B {}{unit}", num(va), num(vb));
        if va == vb {
            per_metric.push((name.clone(), None, format!("{values}, equal")));
            continue;
        }
        if relative < threshold {
            per_metric.push((
                name.clone(),
                None,
                format!("{values}, {} % apart < {} % threshold", num(relative), num(threshold)),
            ));
            continue;
        }
        let b_better = match better {
            Better::Lower => vb < va,
            Better::Higher => vb > va,
        };
        let side = if b_better { Variant::B } else { Variant::A };
        let by = if va.abs() < EPSILON { String::new() } else { format!(" by {} %", num(relative)) };
        per_metric.push((name.clone(), Some(side), format!("{values}, {side} better{by}")));
    }
    let few = |m: &SlotMetrics| m.requests_counted && m.requests < min_samples as f64;
    let inconclusive = few(a) || few(b);
    if inconclusive {
        let mut notes = Vec::new();
        for (label, m) in [("A", a), ("B", b)] {
            if few(m) {
                notes.push(format!(
                    "only {} requests for {label}, need {min_samples}",
                    num(m.requests.max(0.0).round())
                ));
            }
        }
        per_metric.insert(0, ("samples".into(), None, notes.join(", ")));
        return AbDecision { winner: None, per_metric, inconclusive: true };
    }
    let votes_a = per_metric.iter().filter(|(_, v, _)| *v == Some(Variant::A)).count();
    let votes_b = per_metric.iter().filter(|(_, v, _)| *v == Some(Variant::B)).count();
    let winner = match votes_a.cmp(&votes_b) {
        std::cmp::Ordering::Greater => Some(Variant::A),
        std::cmp::Ordering::Less => Some(Variant::B),
        std::cmp::Ordering::Equal => None,
    };
    AbDecision { winner, per_metric, inconclusive: false }
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn metrics(requests: f64, error_rate: f64, p99: Option<f64>, seconds: f64) -> SlotMetrics {
        SlotMetrics {
            requests,
            errors: requests * error_rate / 100.0,
            error_rate: (requests > 0.0).then_some(error_rate),
            success_rate: (requests > 0.0).then_some(100.0 - error_rate),
            p99_ms: p99,
            throughput: (seconds > 0.0).then(|| requests / seconds),
            seconds,
            requests_counted: true,
            scrape_failures: 0,
            counters: BTreeMap::new(),
        }
    }

    /// Thresholds with rates given in percent, as the table reads best.
    fn th(err: Option<f64>, p99: Option<f64>, success: Option<f64>) -> Thresholds {
        let rate = |pct: Option<f64>| pct.map(|p| Rate::from_fraction(p / 100.0).expect("a test rate"));
        Thresholds { max_error_rate: rate(err), max_latency_p99_ms: p99, min_success_rate: rate(success) }
    }

    #[test]
    fn numbers() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (31.25, "31.2"),
            (31.26, "31.3"),
            (0.4, "0.4"),
            (0.04, "0.04"),
            (0.004, "0"),
            (12.5, "12.5"),
            (212.0, "212"),
            (-0.0001, "0"),
            (99.96, "100"),
            (f64::INFINITY, "∞"),
        ] {
            assert_eq!(num(v), want, "{v}");
        }
    }

    #[test]
    fn evaluate_table() {
        let none = th(None, None, None);
        let strict = th(Some(1.0), Some(200.0), Some(99.0));
        // (metrics, thresholds, min samples, expected kind, expected text fragment)
        let cases: Vec<(SlotMetrics, Thresholds, u64, &str, &str)> = vec![
            (metrics(7.0, 0.0, Some(10.0), 30.0), none.clone(), 20, "inconclusive", "only 7 requests in 30 s, need 20"),
            (metrics(1.0, 100.0, Some(10.0), 30.0), strict.clone(), 20, "inconclusive", "only 1 request in 30 s"),
            (metrics(0.0, 0.0, None, 120.0), strict.clone(), 20, "inconclusive", "only 0 requests in 2 min"),
            (metrics(19.0, 100.0, None, 30.0), strict.clone(), 20, "inconclusive", "need 20"),
            (metrics(20.0, 0.0, Some(10.0), 30.0), none.clone(), 20, "pass", "error rate 0%"),
            (metrics(5.0, 0.0, Some(10.0), 30.0), none.clone(), 5, "pass", "p99 10 ms"),
            (metrics(200.0, 31.2, Some(10.0), 30.0), th(Some(1.0), None, None), 20, "fail", "error rate 31.2 % > 1 %"),
            (metrics(200.0, 1.0, Some(10.0), 30.0), th(Some(1.0), None, None), 20, "pass", "error rate 1%"),
            (metrics(200.0, 0.4, Some(212.0), 16.0), strict.clone(), 20, "fail", "p99 latency 212 ms > 200 ms"),
            (metrics(200.0, 2.0, Some(10.0), 16.0), th(None, None, Some(99.0)), 20, "fail", "success rate 98 % < 99 %"),
            (
                metrics(200.0, 5.0, Some(500.0), 16.0),
                strict.clone(),
                20,
                "fail",
                "error rate 5 % > 1 %, p99 latency 500 ms > 200 ms, success rate 95 % < 99 %",
            ),
            (
                metrics(200.0, 0.4, Some(150.0), 16.0),
                strict.clone(),
                20,
                "pass",
                "error rate 0.4%, p99 150 ms, 12.5 req/s",
            ),
            // Configured latency threshold without a histogram: not checked, not a pass.
            (metrics(200.0, 0.0, None, 16.0), strict.clone(), 20, "inconclusive", "p99 latency unknown"),
            // ... unless something else already failed.
            (metrics(200.0, 50.0, None, 16.0), strict.clone(), 20, "fail", "error rate 50 % > 1 %"),
        ];
        for (m, t, min, kind, text) in cases {
            let v = evaluate(&m, &t, min);
            let got_kind = match &v {
                Verdict::Pass { .. } => "pass",
                Verdict::Fail { .. } => "fail",
                Verdict::Inconclusive { .. } => "inconclusive",
            };
            assert_eq!(got_kind, kind, "{m:?} {t:?}: {v}");
            assert!(v.text().contains(text), "{v} does not contain {text:?}");
        }
    }

    #[test]
    fn uncounted_requests_need_a_measured_threshold() {
        let mut m = SlotMetrics { error_rate: Some(0.5), success_rate: Some(99.5), ..Default::default() };
        m.requests_counted = false;
        assert!(evaluate(&m, &th(Some(1.0), None, None), 20).is_pass());
        assert!(evaluate(&m, &th(Some(0.1), None, None), 20).is_fail());
        assert!(matches!(evaluate(&m, &th(None, None, None), 20), Verdict::Inconclusive { .. }));
        assert!(matches!(evaluate(&m, &th(None, Some(100.0), None), 20), Verdict::Inconclusive { .. }));
    }

    #[test]
    fn summaries() {
        assert_eq!(summary(&metrics(200.0, 0.4, Some(211.6), 16.0)), "error rate 0.4%, p99 212 ms, 12.5 req/s");
        assert_eq!(summary(&metrics(0.0, 0.0, None, 30.0)), "no requests in 30 s");
        let mut m = metrics(200.0, 0.0, None, 16.0);
        m.scrape_failures = 2;
        assert_eq!(summary(&m), "error rate 0%, 12.5 req/s, 2 scrapes failed");
        assert_eq!(summary(&SlotMetrics::default()), "no metrics");
        let mut fewer = metrics(3.0, 0.0, None, 30.0);
        fewer.scrape_failures = 1;
        assert_eq!(
            evaluate(&fewer, &Thresholds::default(), 20).text(),
            "only 3 requests in 30 s, need 20 (1 scrape failed)"
        );
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ab_table() {
        let a = metrics(1000.0, 2.0, Some(200.0), 100.0);
        let b_faster = metrics(1000.0, 2.0, Some(150.0), 100.0);
        let b_worse = metrics(1000.0, 4.0, Some(210.0), 100.0);
        let b_mixed = metrics(1000.0, 1.0, Some(260.0), 100.0);
        let b_close = metrics(1020.0, 2.02, Some(204.0), 100.0);
        let b_few = metrics(5.0, 0.0, Some(1.0), 100.0);
        let no_extra = BTreeMap::new();
        let el = names(&["errorRate", "latency"]);
        // (b, metrics, threshold, winner, inconclusive)
        let cases: Vec<(&SlotMetrics, Vec<String>, f64, Option<Variant>, bool)> = vec![
            // Latency 25 % better, error rate equal: B.
            (&b_faster, el.clone(), 5.0, Some(Variant::B), false),
            // B worse on both: A.
            (&b_worse, el.clone(), 1.0, Some(Variant::A), false),
            // Latency only 5 % worse, under a 10 % threshold; error rate 100 % worse: A.
            (&b_worse, el.clone(), 10.0, Some(Variant::A), false),
            // One each: tie, A stays.
            (&b_mixed, el.clone(), 5.0, None, false),
            // Everything within 5 %: nothing counts.
            (&b_close, names(&["errorRate", "latency", "successRate", "throughput"]), 5.0, None, false),
            // With no threshold every difference counts: A better on errors and latency, B on throughput.
            (&b_close, names(&["errorRate", "latency", "throughput"]), 0.0, Some(Variant::A), false),
            // Too few requests in B.
            (&b_few, el.clone(), 5.0, None, true),
            // No metrics at all.
            (&b_faster, vec![], 5.0, None, false),
        ];
        for (b, ms, threshold, winner, inconclusive) in cases {
            let d = ab_decide(&a, b, &ms, &no_extra, threshold, 20);
            assert_eq!((d.winner, d.inconclusive), (winner, inconclusive), "{ms:?} @ {threshold}: {}", d.explain());
        }
        let d = ab_decide(&a, &b_faster, &el, &no_extra, 5.0, 20);
        assert_eq!(d.per_metric[0], ("errorRate".into(), None, "errorRate: A 2 %, B 2 %, equal".into()));
        assert_eq!(d.per_metric[1].1, Some(Variant::B));
        assert_eq!(d.per_metric[1].2, "latency: A 200 ms, B 150 ms, B better by 25 %");
        assert_eq!(
            d.explain(),
            "B wins (errorRate: A 2 %, B 2 %, equal; latency: A 200 ms, B 150 ms, B better by 25 %)"
        );
        let few = ab_decide(&a, &b_few, &el, &no_extra, 5.0, 20);
        assert!(few.explain().starts_with("inconclusive (only 5 requests for B, need 20"), "{}", few.explain());
    }

    #[test]
    fn ab_custom_and_missing_metrics() {
        let a = metrics(1000.0, 0.0, None, 100.0);
        let b = metrics(1000.0, 0.5, None, 100.0);
        let extra = BTreeMap::from([("conversion".to_string(), (2.0, 3.0)), ("broken".to_string(), (f64::NAN, 1.0))]);
        let ms = names(&["conversion", "latency", "unknown", "broken"]);
        let d = ab_decide(&a, &b, &ms, &extra, 10.0, 20);
        assert_eq!(d.winner, Some(Variant::B), "{}", d.explain());
        assert_eq!(d.per_metric[0].2, "conversion: A 2, B 3, B better by 50 %");
        assert_eq!(d.per_metric[1].2, "latency: no value for A and B");
        assert_eq!(d.per_metric[2].2, "unknown: no provider for this metric");
        assert_eq!(d.per_metric[3].2, "broken: no value for A");
        // Error rate from zero: any increase counts, whatever the threshold.
        let d = ab_decide(&a, &b, &names(&["errorRate", "conversion"]), &extra, 60.0, 20);
        assert_eq!(d.winner, Some(Variant::A), "{}", d.explain());
        assert_eq!(d.per_metric[0].2, "errorRate: A 0 %, B 0.5 %, A better");
    }
}
