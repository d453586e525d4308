//! The pages rendered from a small fleet, a status document and rollouts: what each shows,
//! and that nothing from a manifest or the status reaches the page unescaped.

use super::*;
use crate::events::{AbLive, Phase, RolloutLive, SlotVerdict};
use crate::model::{load, FileSet, Loaded};
use crate::plan::Slot;
use serde_json::{json, Value};

const EVIL: &str = "<script>alert(1)</script>";

fn fleet() -> Loaded {
    let mut files = FileSet::new();
    let mut put = |path: &str, text: String| {
        files.insert(path.to_string(), text.into_bytes());
    };
    put(
        "plugsync.yaml",
        "fleet: demo\nbackend: {type: docker, network: demo}\nwindows:\n  - {kind: deny, schedule: '0 22 * * *', duration: 2h}\n"
            .into(),
    );
    put(
        "plugins/web/plugin.yaml",
        format!(
            "id: web\nname: Web shop\nversion: 1.1.0\ndescription: \"Sells things {EVIL}\"\nowners: [team-web]\n\
             tags: [frontend, \"x<y\"]\nruntime: {{image: 'example/web:1.1.0'}}\nreplicas: 2\ndependsOn: [auth]\n\
             rollout: {{strategy: Canary, canaryConfig: {{steps: [20, 50, 100], evaluationPeriod: 8s}}}}\n"
        ),
    );
    put("plugins/auth/plugin.yaml", "id: auth\nversion: 1.0.0\nruntime: {image: 'example/auth:1.0.0'}\n".into());
    put(
        "plugins/shop/plugin.yaml",
        "id: shop\nversion: 2.0.0\nruntime: {image: 'example/shop:2.0.0'}\nrollout: {strategy: ABTesting, \
         abConfig: {testDuration: 30s, decisionMetrics: [latency, errorRate], trafficSplit: {A: 50, B: 50}}}\n"
            .into(),
    );
    let loaded = load(&files, None);
    assert!(loaded.is_valid(), "{:?}", loaded.errors().collect::<Vec<_>>());
    loaded
}

fn doc() -> Value {
    json!({
        "fleet": "demo",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "at": "2026-12-04T12:00:00Z",
        "errors": [],
        "plugins": {
            "web": {"plugin": "web", "state": "INSTALLING", "desiredVersion": "1.1.0", "strategy": "Canary",
                    "slots": {"stable": {"version": "1.0.0", "instances": 2}, "canary": {"version": "1.1.0", "instances": 1}},
                    "lastError": format!("bad {EVIL}"),
                    "drift": {"open": true, "findings": [format!("missing web-1 {EVIL}")], "detectedAt": "2026-12-04T11:59:00Z"}},
            "auth": {"plugin": "auth", "state": "ACTIVE", "desiredVersion": "1.0.0",
                     "slots": {"stable": {"version": "1.0.0", "instances": 1}}, "applied": "feedfacecafe0000"},
            "gone": {"plugin": "gone", "state": "UNINSTALLED"}
        },
        "plan": {"fleet": "demo", "changes": [], "held": [{"plugin": "web", "kind": "update", "reason": format!("window {EVIL}")}]}
    })
}

fn verdict(requests: f64, p99: f64) -> SlotVerdict {
    SlotVerdict {
        verdict: "inconclusive",
        text: format!("too few requests {EVIL}"),
        requests: Some(requests),
        error_rate: Some(0.0),
        success_rate: Some(100.0),
        p99_ms: Some(p99),
        throughput: Some(requests / 10.0),
    }
}

fn rollouts() -> BTreeMap<String, RolloutLive> {
    let web = RolloutLive {
        plugin: "web".into(),
        slot: Slot::Stable,
        strategy: "Canary".into(),
        version: "1.1.0".into(),
        target: "abcdef123456".into(),
        step: 1,
        steps: vec![20.0, 50.0, 100.0],
        shares: Vec::new(),
        phase: Phase::Progressing,
        note: format!("canary at 50 % {EVIL}"),
        verdicts: [(Slot::Canary, verdict(40.0, 12.5))].into(),
        ab: None,
        started_ms: Some(1_000),
        step_started_ms: Some(4_000),
        step_period_ms: Some(8_000),
        at_ms: 9_000,
    };
    let shop = RolloutLive {
        plugin: "shop".into(),
        strategy: "ABTesting".into(),
        version: "2.0.0".into(),
        step: 0,
        steps: Vec::new(),
        note: "A/B test: B takes 50 %".into(),
        verdicts: [(Slot::Stable, verdict(120.0, 10.0)), (Slot::B, verdict(118.0, 30.0))].into(),
        ab: Some(AbLive { winner: Some("A".into()), inconclusive: false, summary: format!("A wins {EVIL}") }),
        started_ms: None,
        step_started_ms: Some(0),
        step_period_ms: None,
        at_ms: 15_000,
        ..web.clone()
    };
    [("web".to_string(), web), ("shop".to_string(), shop)].into()
}

fn with<T>(page: impl FnOnce(&View) -> T) -> T {
    let loaded = fleet();
    let doc = doc();
    let view = View::new(Some(&loaded.fleet), &doc, rollouts(), chrono::Utc::now());
    page(&view)
}

#[test]
fn the_fleet_page_shows_every_plugin_and_escapes_what_it_shows() {
    let html = with(fleet_html);
    for id in ["web", "auth", "shop", "gone"] {
        assert!(html.contains(&format!("<tr data-plugin=\"{id}\"")), "row for {id}");
    }
    assert!(!html.contains(EVIL), "unescaped manifest or status text:\n{html}");
    assert!(html.contains("Sells things &lt;script&gt;"), "the description, escaped");
    assert!(html.contains("x&lt;y"), "a tag, escaped");
    assert!(html.contains("<span class=\"slot slot-canary\">canary</span> 1.1.0 ×1"), "versions per slot");
    assert!(html.contains("<span class=\"short\">3/2</span>") || html.contains("<span class=\"ok\">3/2</span>"));
    assert!(html.contains("data-weight=\"50\""), "the canary's weight");
    assert!(html.contains("50 % · step 2 of 3 · 5 s of 8 s · progressing"), "the canary's progress label");
    assert!(html.contains("A/B test · 15 s of 30 s · progressing"), "the A/B test's course");
    assert!(html.contains("open: 1 finding"), "drift");
    assert!(html.contains("not in Git"), "a plugin only the status knows");
    assert!(html.contains("<code title=\"0123456789abcdef0123456789abcdef01234567\">0123456789ab</code>"));
    assert!(html.contains("datetime=\"2026-12-04T12:00:00Z\""), "the last pass");
    assert!(html.contains("next: deny window &#39;0 22 * * *&#39; for 2h opens at"), "the next sync window");
    assert!(html.contains("id=\"filter\""), "the filter box");
    assert!(html.contains("data-url=\"/api/v1/reconcile\""), "reconcile now");
}

#[test]
fn the_plugin_page_shows_metadata_status_steps_verdicts_and_actions() {
    let html = with(|v| plugin_html(v, "web")).expect("web's page");
    assert!(!html.contains(EVIL), "unescaped text:\n{html}");
    for action in ["promote", "pause", "resume", "abort", "retry"] {
        assert!(html.contains(&format!("data-url=\"/api/v1/plugins/web/rollout/{action}\"")), "{action}");
    }
    assert!(
        html.contains("<li class=\"done\">20 %</li><li class=\"current\">50 %</li><li class=\"pending\">100 %</li>")
    );
    assert!(html.contains("<tr data-slot=\"canary\">"), "the canary's verdict row");
    assert!(html.contains("12.5 ms"), "p99 of the canary");
    // The catalogue's sections: API, runtime (image), policy in words, dependencies both ways.
    assert!(html.contains("<h2 id=\"api\">API</h2>") && html.contains("example/web:1.1.0"));
    assert!(html.contains("Canary: 20 % → 50 % → 100 %, 8s each"), "the policy in words");
    assert!(html.contains("href=\"auth.html\""), "a link to what it depends on");
    let auth = with(|v| plugin_html(v, "auth")).expect("auth's page");
    assert!(auth.contains("href=\"web.html\""), "and back from what it uses");
    assert!(auth.contains("feedfacecafe"), "the applied spec hash");
    assert!(with(|v| plugin_html(v, "nobody")).is_none());
    assert!(html.contains("id=\"catalogue\" data-url=\"/plugins/web/catalogue\" data-revision=\"0123456789abcdef"));
    assert!(with(|v| plugin_page::catalogue(v, "web")).contains("<h2 id=\"runtime\">Runtime</h2>"));
}

#[test]
fn the_ab_page_compares_a_and_b_per_decision_metric() {
    let html = with(|v| plugin_html(v, "shop")).expect("shop's page");
    assert!(html.contains("<table class=\"ab\" data-ab>"));
    assert!(html.contains(
        "<tr data-metric=\"latency\"><td>latency</td><td class=\"num\" data-variant=\"a\">10 ms</td>\
         <td class=\"num\" data-variant=\"b\">30 ms</td><td class=\"num\">+200 %</td><td>lower</td></tr>"
    ));
    assert!(html.contains("data-metric=\"errorRate\""));
    assert!(html.contains("<td class=\"num\" data-variant=\"a\">120</td><td class=\"num\" data-variant=\"b\">118</td>"));
    assert!(html.contains("A ahead") && html.contains("A wins &lt;script&gt;"));
}

#[test]
fn assets_are_embedded_and_fingerprinted() {
    assert!(assets::CSS_URL.starts_with("/assets/dashboard.css?v="));
    assert!(assets::JS_URL.starts_with("/assets/dashboard.js?v="));
    assert!(assets::get("dashboard.js")
        .is_some_and(|(t, js)| t.starts_with("text/javascript") && js.contains("EventSource")));
    assert!(assets::get("../secret").is_none());
    assert_eq!(plugin_id("web.html"), "web");
}

#[test]
fn status_history_links_each_commit_and_its_page_shows_the_patch() {
    use crate::status::history::HistoryEntry;
    let entry = |sha: &str, paths: &[&str], subject: &str| HistoryEntry {
        sha: sha.into(),
        at: "2026-12-04T12:00:00Z".into(),
        subject: subject.into(),
        message: format!("{subject}\n\nbody {EVIL}"),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        patch: format!(
            "--- a/status/web.yaml\n+++ b/status/web.yaml\n@@ -1 +1 @@\n-state: INSTALLING\n+state: ACTIVE {EVIL}\n"
        ),
    };
    let history = vec![
        entry("1111111aaaaaaa", &["status/web.yaml", "status/fleet.yaml"], "web: ACTIVE 1.1.0"),
        entry("2222222bbbbbbb", &["status/shop.yaml"], "shop: ACTIVE 1.0.0"),
    ];
    let loaded = fleet();
    let doc = doc();
    let mut view = View::new(Some(&loaded.fleet), &doc, rollouts(), chrono::Utc::now());
    view.history = &history;
    let page = super::plugin_page::live(&view, "web");
    assert!(page.contains("<a href=\"/commits/1111111aaaaaaa\"><code>1111111aaaaa</code></a>"), "{page}");
    assert!(!page.contains("2222222"), "shop's commit is not web's history");
    let commit = super::commit_page::render(&view, "1111111").expect("a prefix finds the commit");
    assert!(commit.contains("<span class=\"add\">+state: ACTIVE"), "{commit}");
    assert!(commit.contains("<span class=\"del\">-state: INSTALLING</span>"), "{commit}");
    assert!(commit.contains("<a href=\"/plugins/web\">web</a>, the fleet"), "{commit}");
    assert!(!commit.contains(EVIL), "commit text is escaped");
    assert!(super::commit_page::render(&view, "111").is_none(), "too short a prefix");
    assert!(super::commit_page::render(&view, "3333333").is_none(), "unknown commit");
    let empty = View::new(Some(&loaded.fleet), &doc, rollouts(), chrono::Utc::now());
    assert!(super::plugin_page::live(&empty, "web").contains("No status commit for this plugin yet."));
}
