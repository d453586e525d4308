//! Table tests of the catalogue: the policy in words, escaping for each format, the graph's
//! layout and text forms, links, status and secrets.

use super::graph::{self, Layout, NODE_HEIGHT, NODE_WIDTH};
use super::*;
use crate::model::FileSet;

fn plugin_yaml(id: &str, extra: &str) -> String {
    format!("id: {id}\nversion: 1.1.0\nruntime:\n  image: echo:1\n{extra}")
}

/// A fleet loaded the way `plugsync docs` loads one; it must be valid.
fn fleet(plugins: &[(&str, &str)]) -> Fleet {
    let mut files = FileSet::new();
    files.insert("plugsync.yaml".into(), b"fleet: t\n".to_vec());
    for (id, extra) in plugins {
        files.insert(format!("plugins/{id}/plugin.yaml"), plugin_yaml(id, extra).into_bytes());
    }
    let loaded = crate::model::load(&files, None);
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    loaded.fleet
}

fn file<'a>(files: &'a [GeneratedFile], path: &str) -> &'a str {
    &files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} not generated")).contents
}

#[test]
fn policy_in_words() {
    let cases = [
        (
            "rollout:\n  strategy: Canary\n  canaryConfig:\n    steps: [10, 25, 50, 100]\n    evaluationPeriod: 5m\n    \
             thresholds: {maxErrorRate: 0.01, maxLatencyP99Ms: 500}\n",
            "Canary: 10 % → 25 % → 50 % → 100 %, 5m each; rolled back if error rate > 1 % or p99 > 500 ms",
        ),
        (
            "rollout:\n  strategy: Canary\n  canaryConfig:\n    initialPercentage: 20\n    maxSurge: 2\n",
            "Canary: 20 % → 40 % → 60 % → 80 % → 100 %, 1m each; no thresholds: a step fails only when its \
             instances are not ready; up to 2 extra stable instances (maxSurge) for finer weights",
        ),
        (
            "rollout:\n  strategy: Canary\n  canaryConfig:\n    steps: [50, 100]\n    autoRollback: false\n    \
             thresholds: {minSuccessRate: \"99%\", maxErrorRate: 0.005, maxLatencyP99Ms: 250}\n",
            "Canary: 50 % → 100 %, 1m each; paused for `plugsync rollout promote` or `abort` if error rate > 0.5 %, \
             p99 > 250 ms or success rate < 99 %",
        ),
        (
            "rollout:\n  strategy: Rolling\n  rollingConfig:\n    batchSize: \"25%\"\n    waitBetweenBatches: 10s\n    \
             healthCheckTimeout: 2m\n    maxParallelBatches: 2\n",
            "Rolling: batches of 25 % of the instances, up to 2 batches at a time, 10s between batches, new \
             instances start before old ones stop; a batch not ready within 2m rolls every updated batch back",
        ),
        (
            "rollout:\n  strategy: Rolling\n",
            "Rolling: batches of 1 instance, one batch at a time, no wait between batches, new instances start \
             before old ones stop; a batch not ready within 1m rolls every updated batch back",
        ),
        (
            "rollout:\n  strategy: Direct\n",
            "Direct: every instance is replaced at once; the old instances stop before the new ones start \
             (stop-first); the previous version comes back if the new one is not ready within 1m",
        ),
        (
            "rollout:\n  strategy: BlueGreen\n",
            "Blue-green: the new version (green) starts beside the running one (blue) without traffic, then takes \
             all traffic at once; no monitoring period; afterwards blue is removed",
        ),
        (
            "rollout:\n  strategy: BlueGreen\n  blueGreenConfig:\n    warmupPeriod: PT30S\n    switchoverType: Gradual\n    \
             gradualSteps: [25, 100]\n    monitoringPeriod: 2m\n    smokeTests: [/ready]\n    \
             keepPreviousEnvironment: true\n    thresholds: {maxLatencyP99Ms: 300}\n",
            "Blue-green: the new version (green) starts beside the running one (blue) without traffic, warms up \
             for 30s, passes the smoke tests /ready, then takes traffic gradually (25 % → 100 %); blue keeps \
             running for 2m of monitoring, so a failed verdict switches back (failed if p99 > 300 ms); afterwards \
             blue is kept, stopped (keepPreviousEnvironment)",
        ),
        (
            "rollout:\n  strategy: ABTesting\n  abConfig:\n    variantA: 1.0.0\n    trafficSplit: {A: 80, B: 20}\n    \
             testDuration: 10m\n    decisionMetrics: [errorRate]\n    winnerThreshold: 0.05\n",
            "A/B test: A (1.0.0) 80 % against B (1.1.0) 20 % for 10m, decided on errorRate; B must be at least \
             5 % better to win; B is promoted only by a person (`plugsync rollout promote`)",
        ),
    ];
    for (rollout, want) in cases {
        let fleet = fleet(&[("p", rollout)]);
        let p = &fleet.plugins["p"];
        assert_eq!(words::rollout(p), want, "{rollout}");
        let page = file(&render(&fleet, None), "plugins/p.html").to_string();
        assert!(page.contains("inline rollout in plugins/p/plugin.yaml"), "policy source shown:\n{page}");
    }
}

#[test]
fn thresholds_in_words() {
    use crate::model::policy::Thresholds;
    use crate::model::Rate;
    let rate = |f: f64| Some(Rate::from_fraction(f).expect("a rate"));
    let cases = [
        (Thresholds::default(), None),
        (Thresholds { max_error_rate: rate(0.01), ..Default::default() }, Some("error rate > 1 %")),
        (
            Thresholds { max_error_rate: rate(0.02), max_latency_p99_ms: Some(500.0), min_success_rate: rate(0.95) },
            Some("error rate > 2 %, p99 > 500 ms or success rate < 95 %"),
        ),
        (Thresholds { max_latency_p99_ms: Some(12.5), ..Default::default() }, Some("p99 > 12.5 ms")),
    ];
    for (t, want) in cases {
        assert_eq!(words::thresholds(&t).as_deref(), want, "{t:?}");
    }
}

#[test]
fn the_analysis_says_where_evidence_comes_from() {
    let canary = "rollout:\n  strategy: Canary\n  analysis:\n    interval: 10s\n    minSamples: 5\n";
    let routed = "traffic: {router: haproxy}\nrollout:\n  strategy: Canary\n";
    let fleet = fleet(&[("a", canary), ("b", routed), ("c", "rollout:\n  strategy: Rolling\n")]);
    let words = |id: &str| words::analysis(&fleet.plugins[id]);
    assert_eq!(
        words("a").as_deref(),
        Some(
            "Evidence from plugsync scraping each instance's metrics endpoint, every 10s, at least 5 samples \
             before a verdict; too little data is inconclusive, never a pass"
        )
    );
    assert!(words("b").is_some_and(|w| w.starts_with("Evidence from the router's own per-request log")));
    assert_eq!(words("c"), None, "Rolling takes no verdicts");
}

#[test]
fn markdown_escaping() {
    for (text, want) in [
        ("a|b", "a\\|b"),
        ("- item", "\\- item"),
        ("1. first", "1\\. first"),
        ("1.1.0", "1.1.0"),
        ("<script>x</script>", "\\<script>x\\</script>"),
        ("> quote", "\\> quote"),
        ("a > b", "a > b"),
        ("two\nlines", "two lines"),
        ("x_y*z", "x\\_y\\*z"),
        ("[a](b)", "\\[a\\](b)"),
        ("AT&T", "AT\\&T"),
        ("# not a heading", "\\# not a heading"),
    ] {
        assert_eq!(escape_markdown(text), want, "{text:?}");
    }
    for (text, want) in [("a`b", "``a`b``"), ("a|b", "`a\\|b`"), ("`x`", "`` `x` ``"), ("plain", "`plain`")] {
        assert_eq!(code_markdown(text), want, "{text:?}");
    }
}

#[test]
fn html_mermaid_and_dot_escaping() {
    assert_eq!(escape_html("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    assert_eq!(graph::mermaid_text("a\"b<c>#d"), "a#quot;b#lt;c#gt;#35;d");
    assert_eq!(graph::dot_text("say \"hi\" \\ bye\n"), "say \\\"hi\\\" \\\\ bye ");
}

/// A description with `<script>` and `|` stays text in both formats; the index table keeps its
/// column count.
#[test]
fn text_from_manifests_is_escaped_in_every_page() {
    let evil = "Fast <script>alert(1)</script> | cheap & \"quoted\"";
    let fleet = fleet(&[("p", &format!("name: \"P|<b>\"\ndescription: '{evil}'\nowners: [\"a|b\"]\n"))]);
    let files = render(&fleet, None);
    for f in &files {
        if f.path.ends_with(".html") {
            assert!(!f.contents.contains("<script") && !f.contents.contains("<b>"), "{}:\n{}", f.path, f.contents);
        }
        if f.path.ends_with(".md") {
            let raw = f.contents.char_indices().filter(|&(i, c)| c == '<' && !f.contents[..i].ends_with('\\'));
            assert_eq!(raw.count(), 0, "{}: every < escaped:\n{}", f.path, f.contents);
        }
    }
    let html = file(&files, "index.html");
    assert!(html.contains("Fast &lt;script&gt;alert(1)&lt;/script&gt; | cheap &amp; &quot;quoted&quot;"), "{html}");
    let md = file(&files, "index.md");
    let row = md.lines().find(|l| l.starts_with("| [p]")).expect("the plugin's row");
    let separators = row.char_indices().filter(|&(i, c)| c == '|' && !row[..i].ends_with('\\')).count();
    assert_eq!(separators, 7, "6 columns, every | in the text escaped: {row}");
    assert!(row.contains("Fast \\<script>alert(1)\\</script> \\| cheap \\& \"quoted\""), "{row}");
    assert!(row.contains("a\\|b"), "{row}");
    let page = file(&files, "plugins/p.md");
    assert!(page.starts_with("# P\\|\\<b> (p)\n"), "{page}");
    assert!(file(&files, "plugins/p.html").contains("<title>P|&lt;b&gt; (p)</title>"));
}

/// a → b → c → x (outside the fleet), d alone: columns by dependency depth, the deepest on the
/// left; the external node is drawn, never linked.
#[test]
fn layout_of_a_chain_with_an_external_dependency() {
    let mut fleet = fleet(&[("a", "dependsOn: [b]\n"), ("b", "dependsOn: [c]\n"), ("c", ""), ("d", "")]);
    fleet.plugins.get_mut("c").expect("c").manifest.depends_on.push("x".into());
    let layout = Layout::of(&fleet, None);
    let got: Vec<(&str, usize, usize, bool)> =
        layout.nodes.iter().map(|n| (n.id.as_str(), n.column, n.row, n.external)).collect();
    assert_eq!(
        got,
        vec![("a", 0, 0, false), ("b", 1, 0, false), ("c", 2, 0, false), ("d", 3, 1, false), ("x", 3, 0, true)]
    );
    assert_eq!(layout.edge_ids(), vec![("a", "b"), ("b", "c"), ("c", "x")]);
    for (user, dep) in layout.edges.clone() {
        assert!(layout.nodes[user].column < layout.nodes[dep].column, "every arrow points right");
        assert_eq!(layout.route(user, dep).len(), 2, "neighbouring columns: a straight line");
    }
    let mermaid = graph::mermaid(&layout);
    for line in
        ["n0[\"a\"]", "n4[\"x (not in this fleet)\"]", "n0 --> n1", "n1 --> n2", "n2 --> n4", "class n4 external"]
    {
        assert!(mermaid.contains(line), "{line} in\n{mermaid}");
    }
    let dot = graph::dot(&layout);
    assert!(dot.contains("\"a\" [label=\"a\", URL=\"plugins/a.html\"];"), "{dot}");
    assert!(dot.contains("\"x\" [label=\"x (not in this fleet)\", style=\"rounded,dashed\"];"), "{dot}");
    assert!(dot.contains("\"c\" -> \"x\";"), "{dot}");
    let svg = html::svg(&layout, "");
    assert!(svg.contains("<a href=\"plugins/a.html\">"), "{svg}");
    assert!(!svg.contains("plugins/x.html"), "an external node is not linked:\n{svg}");
    assert!(svg.contains("data-from=\"c\" data-to=\"x\""), "{svg}");
}

/// An arrow across a column goes round that column's boxes, through the gap between rows.
#[test]
fn a_long_arrow_avoids_the_boxes_it_crosses() {
    let fleet = fleet(&[
        ("a", "dependsOn: [b, c]\n"),
        ("b", "dependsOn: [c]\n"),
        ("b2", "dependsOn: [c]\n"),
        ("u", "dependsOn: [b, b2]\n"),
        ("c", ""),
    ]);
    let layout = Layout::of(&fleet, None);
    let (a, c) = (layout.index_of("a").expect("a"), layout.index_of("c").expect("c"));
    assert_eq!((layout.nodes[a].column, layout.nodes[c].column), (0, 2));
    let route = layout.route(a, c);
    assert_eq!(route.len(), 4, "{route:?}");
    for i in [layout.index_of("b").expect("b"), layout.index_of("b2").expect("b2")] {
        let (x, y) = layout.position(i);
        for &(px, py) in &route[1..3] {
            assert!(px >= x && px <= x + NODE_WIDTH, "waypoint in column 1: {route:?}");
            assert!(py < y || py > y + NODE_HEIGHT, "waypoint {py} outside the box {y}..{}", y + NODE_HEIGHT);
        }
    }
    let (width, height) = layout.size();
    assert!(route.iter().all(|&(x, y)| x <= width && y <= height), "{route:?} inside {width}×{height}");
}

#[test]
fn a_plugin_page_draws_its_neighbourhood_only() {
    let fleet = fleet(&[("a", "dependsOn: [b]\n"), ("b", "dependsOn: [c]\n"), ("c", ""), ("d", "")]);
    let layout = Layout::of(&fleet, Some("b"));
    let ids: Vec<(&str, bool)> = layout.nodes.iter().map(|n| (n.id.as_str(), n.focus)).collect();
    assert_eq!(ids, vec![("a", false), ("b", true), ("c", false)]);
    assert!(graph::mermaid(&layout).contains("class n1 focus"));
    let page = file(&render(&fleet, None), "plugins/d.md").to_string();
    assert!(!page.contains("```mermaid"), "no graph for a plugin without dependencies:\n{page}");
}

/// Cycles are validation errors, but a page must still come out (and not hang).
#[test]
fn a_cycle_still_lays_out() {
    let mut fleet = fleet(&[("p", "dependsOn: [q]\n"), ("q", "")]);
    fleet.plugins.get_mut("q").expect("q").manifest.depends_on.push("p".into());
    let layout = Layout::of(&fleet, None);
    assert_eq!(layout.edge_ids(), vec![("p", "q"), ("q", "p")]);
    assert!(layout.nodes.iter().all(|n| n.column < 2));
    assert!(!html::svg(&layout, "").is_empty());
}

#[test]
fn relations_both_ways_and_relative_links() {
    let fleet = fleet(&[("a", "dependsOn: [c]\n"), ("b", "dependsOn: [c]\n"), ("c", "")]);
    let r = Relations::of(&fleet);
    assert_eq!(r.used_by("c").map(String::as_str).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(r.depends_on("a").map(String::as_str).collect::<Vec<_>>(), vec!["c"]);
    assert_eq!(r.depends_on("c").count(), 0);
    for (folder, path, want) in [
        ("", "plugins/crm.html", "plugins/crm.html"),
        ("plugins/", "plugins/crm.html", "crm.html"),
        ("plugins/", "index.html", "../index.html"),
        ("plugins/", "dependencies.dot", "../dependencies.dot"),
    ] {
        assert_eq!(relative(folder, path), want, "{folder} → {path}");
    }
    let files = render(&fleet, None);
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "index.md",
            "index.html",
            "dependencies.dot",
            "plugins/a.md",
            "plugins/a.html",
            "plugins/b.md",
            "plugins/b.html",
            "plugins/c.md",
            "plugins/c.html"
        ]
    );
    let c = file(&files, "plugins/c.md");
    assert!(c.contains("- **Used by:** [a](a.md), [b](b.md)"), "{c}");
    assert!(c.contains("[Fleet index](../index.md)"), "{c}");
    assert!(file(&files, "plugins/a.html").contains("<a href=\"c.html\">c</a>"));
    assert!(file(&files, "index.html").contains("<a href=\"plugins/a.html\">a</a>"));
}

#[test]
fn status_shows_on_the_page_and_in_the_index() {
    let fleet = fleet(&[("a", ""), ("b", "")]);
    let summary = StatusSummary {
        state: "ACTIVE".into(),
        slots: vec![SlotSummary { slot: "stable".into(), version: "1.1.0".into(), instances: 2 }],
        revision: Some("34c50c9e2f0000".into()),
        drift: Some(DriftSummary {
            open: true,
            findings: vec!["stopped a-1: expected running, found exited".into()],
            detected_at: "2026-12-04T10:00:00Z".into(),
            resolved_at: None,
        }),
        ..Default::default()
    };
    let book = StatusBook { source: "plugsync/status at 3dad6e0".into(), plugins: [("a".to_string(), summary)].into() };
    let files = render(&fleet, Some(&book));
    let a = file(&files, "plugins/a.html");
    for want in [
        "<h2 id=\"status\">Status</h2>",
        "<code>ACTIVE</code>",
        "stable 1.1.0 × 2",
        "<code>34c50c9</code>",
        "open since 2026-12-04T10:00:00Z: stopped a-1",
        "plugsync/status at 3dad6e0",
    ] {
        assert!(a.contains(want), "{want} in\n{a}");
    }
    assert!(file(&files, "plugins/b.md").contains("No status recorded for this plugin."));
    let index = file(&files, "index.md");
    assert!(index.contains("| [ACTIVE](plugins/a.md#status) |"), "{index}");
    assert!(index.contains("| [none recorded](plugins/b.md#status) |"), "{index}");
    assert!(!file(&render(&fleet, None), "plugins/a.html").contains("id=\"status\""), "no status section unasked");
}

/// Env and config values may be secrets: only their names are shown.
#[test]
fn values_that_may_be_secret_never_appear() {
    let extra = "env: {API_TOKEN: s3cr3t-env-value}\nconfig: {db: {password: hunter2-config}}\n\
                 secretEnv: {SIGNING_KEY: {fromEnv: HOST_SIGNING_KEY}}\n";
    let fleet = fleet(&[("p", extra)]);
    let files = render(&fleet, None);
    for f in &files {
        assert!(!f.contents.contains("s3cr3t-env-value"), "{}", f.path);
        assert!(!f.contents.contains("hunter2-config"), "{}", f.path);
    }
    let page = file(&files, "plugins/p.md");
    assert!(page.contains("`API_TOKEN` (values not shown)"), "{page}");
    assert!(page.contains("`db.password` (values not shown)"), "{page}");
    assert!(page.contains("`SIGNING_KEY` (from the variable `HOST_SIGNING_KEY` of plugsync's host)"), "{page}");
}
