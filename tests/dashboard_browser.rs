//! The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
//! over WebDriver), against `plugsync run` following a real Git remote on the real Docker
//! engine, with traffic from probe containers so analysis has requests:
//!
//! - the fleet page lists every plugin (metadata, versions, states) and filters as you type;
//! - a canary started by a `git push` shows its weight advancing (20 % → 50 %) on the open page,
//!   without a reload;
//! - promote without the API token is refused (the API's 401, said on the page); with the
//!   token, pause holds the canary and promote completes the rollout, all seen live;
//! - the A/B page shows both variants' metrics updating, then the decision.
//!
//! Screenshots: `target/test-output/dashboard/*.png`. Needs Docker, `git`, chromium and
//! chromedriver; fails loudly without them.

use plugsync_test_support::browser::Browser;
use plugsync_test_support::daemon::{self as common_daemon, Daemon, DaemonOptions, Repo};
use plugsync_test_support::docker::{self as common, PluginDef, ProbeClient, TestFleet, V1, V2};
use plugsync_test_support::progressive::{canary, TOKEN};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Slow enough for a person (and the test) to see each weight: 12 s per step.
const WEB_POLICY_PERIOD: &str = "12s";
const SHOP_POLICY: &str = "{strategy: ABTesting, abConfig: {trafficSplit: {A: 50, B: 50}, testDuration: 30s, \
     decisionMetrics: [latency, errorRate], autoPromote: true, winnerThreshold: 0.1}, analysis: {minSamples: 10}}";
const LIVE: Duration = Duration::from_secs(90);

/// A fleet of four plugins under `plugsync run`, probe clients on `web` and `shop`. Fields drop
/// in order: daemon, clients, fleet (its containers, the clients, the network), repo, runtime.
struct Dash {
    daemon: Daemon,
    _clients: Vec<ProbeClient>,
    fleet: TestFleet,
    repo: Repo,
    rt: tokio::runtime::Runtime,
}

fn catalogue(def: &PluginDef, name: &str, description: &str, owners: &str, tags: &str) -> String {
    format!("{}name: {name}\ndescription: {description}\nowners: [{owners}]\ntags: [{tags}]\n", def.yaml())
}

fn auth() -> String {
    let def = PluginDef::new("auth", V1).rollout(&common::direct("10s"));
    catalogue(&def, "Auth", "Sign-in and tokens for every plugin", "team-identity", "core, security")
}

fn web(version: &str) -> String {
    let def = PluginDef::new("web", version).replicas(2).depends_on("auth").rollout(&canary(
        "[20, 50, 100]",
        WEB_POLICY_PERIOD,
        true,
        2,
        0.05,
    ));
    catalogue(&def, "Web shop", "The storefront customers see", "team-web, alice@example.com", "frontend, revenue")
}

fn shop(version: &str, latency_ms: &str) -> String {
    let mut def = PluginDef::new("shop", version).depends_on("auth").rollout(SHOP_POLICY);
    if !latency_ms.is_empty() {
        def = def.env("LATENCY_MS", latency_ms);
    }
    catalogue(&def, "Checkout", "Baskets and payments, A/B tested", "team-checkout", "revenue, ab-test")
}

fn notes() -> String {
    let def = PluginDef::new("notes", V1).depends_on("auth").rollout(&common::rolling(1, "1s", "10s"));
    catalogue(&def, "Release notes", "What changed, for support", "team-docs", "internal")
}

impl Dash {
    fn start() -> Dash {
        common_daemon::ensure_docker();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let docker = rt.block_on(common::docker());
        let fleet = rt.block_on(TestFleet::new("dash"));
        let repo = Repo::new();
        repo.write("plugsync.yaml", &common_daemon::fleet_yaml(&fleet.name, &fleet.network));
        for (id, yaml) in [("auth", auth()), ("web", web(V1)), ("shop", shop(V1, "")), ("notes", notes())] {
            repo.write(&common_daemon::plugin_path(id), &yaml);
        }
        repo.commit_push("four plugins at 1.0.0");
        let daemon = Daemon::start(
            &fleet.name,
            &fleet.network,
            DaemonOptions::new(repo.url(), "1s").env("PLUGSYNC_API_TOKEN", TOKEN),
        );
        let mut dash = Dash { daemon, _clients: Vec::new(), fleet, repo, rt };
        for id in ["auth", "web", "shop", "notes"] {
            dash.wait_active(id, V1, Duration::from_secs(120));
        }
        for alias in ["web", "shop"] {
            let client = dash.rt.block_on(ProbeClient::start(&docker, &dash.fleet, alias));
            dash._clients.push(client);
        }
        dash
    }

    fn wait_active(&self, id: &str, version: &str, timeout: Duration) -> Duration {
        common_daemon::wait_for(
            &format!("{id} ACTIVE at {version}"),
            timeout,
            || self.repo.status_active(id, version),
            || format!("status:\n{}\nlog:\n{}", self.status_text(id), self.daemon.log_tail()),
        )
    }

    fn status_text(&self, id: &str) -> String {
        self.repo.status_text(&format!("status/{id}.yaml")).unwrap_or_else(|| "(none)".into())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.daemon.base_url())
    }
}

/// `target/test-output/dashboard`, emptied of earlier screenshots.
fn shots() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = target.parent().unwrap_or(&target).join("test-output").join("dashboard");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "png")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    dir
}

/// A marker the page loses if it reloads.
const MARK: &str = "window.__plugsyncNoReload = 'kept'; return true;";
const MARKED: &str = "return window.__plugsyncNoReload === 'kept';";

/// The rollout cell of `id`'s row: `[weight, phase]`.
fn row_rollout(id: &str) -> String {
    format!(
        "const td = document.querySelector('tr[data-plugin=\"{id}\"] td[data-cell=\"rollout\"]'); \
         return td ? [td.dataset.weight || null, td.dataset.phase || null, td.innerText] : null;"
    )
}

fn fleet_page_lists_and_filters(dash: &Dash, browser: &Browser) {
    browser.goto(&dash.url("/"));
    browser.wait_for(
        "the event stream to connect",
        LIVE,
        "return document.getElementById('live-state').textContent === 'live';",
    );
    let ids =
        browser.eval("return Array.from(document.querySelectorAll('tr[data-plugin]')).map(r => r.dataset.plugin);");
    assert_eq!(ids, serde_json::json!(["auth", "notes", "shop", "web"]), "the fleet page lists the plugins");
    let web = browser.text("tr[data-plugin=\"web\"]");
    for expected in [
        "Web shop",
        "The storefront customers see",
        "team-web",
        "frontend",
        "stable 1.0.0 ×2",
        "2/2",
        "ACTIVE",
        "Canary",
    ] {
        assert!(web.contains(expected), "web's row shows {expected:?}: {web}");
    }
    let summary = browser.text("section.summary");
    assert!(summary.contains("FOLLOWED REVISION") || summary.to_lowercase().contains("followed revision"), "{summary}");
    assert!(summary.contains(&dash.repo.head()[..12]), "the followed revision: {summary}");
    browser.screenshot("01-fleet");
    browser.type_into("#filter", "checkout");
    let shown = browser.eval("return Array.from(document.querySelectorAll('tr[data-plugin]')).filter(r => !r.hidden).map(r => r.dataset.plugin);");
    assert_eq!(shown, serde_json::json!(["shop"]), "the filter keeps what matches");
    assert_eq!(browser.text("#filter-count"), "1 of 4 plugins");
    browser.screenshot("02-fleet-filtered");
}

/// Pushes web 1.1.0 and watches the open fleet page: returns the weights seen, in order.
fn canary_advances_live(dash: &Dash, browser: &Browser) -> Vec<String> {
    browser.goto(&dash.url("/"));
    browser.wait_for("the event stream", LIVE, "return document.getElementById('live-state').textContent === 'live';");
    browser.eval(MARK);
    dash.repo.write(&common_daemon::plugin_path("web"), &web(V2));
    dash.repo.commit_push("web 1.1.0: canary 20 → 50 → 100");
    let started = Instant::now();
    let mut weights: Vec<String> = Vec::new();
    while !weights.iter().any(|w| w == "50") {
        assert!(started.elapsed() < LIVE, "weights seen {weights:?}; log:\n{}", dash.daemon.log_tail());
        if let Value::Array(cell) = browser.eval(&row_rollout("web")) {
            if let Some(w) = cell.first().and_then(Value::as_str) {
                if weights.last().map(String::as_str) != Some(w) {
                    eprintln!(
                        "[{:>5.1}s] web's weight on the page: {w} ({})",
                        started.elapsed().as_secs_f64(),
                        cell[2]
                    );
                    weights.push(w.to_string());
                    browser.screenshot(&format!("03-fleet-canary-{w}"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(browser.eval(MARKED), Value::Bool(true), "the page advanced without a reload");
    weights
}

fn say(browser: &Browser) -> String {
    browser.text("#action-result")
}

/// On web's page: promote without a token is refused; with it, pause holds and promote ends it.
fn actions_need_the_token(dash: &Dash, browser: &Browser) {
    browser.goto(&dash.url("/plugins/web"));
    browser.eval(MARK);
    browser.wait_for(
        "the rollout on web's page",
        LIVE,
        "const h = document.querySelector('.rollout-head'); return h && h.dataset.phase === 'progressing';",
    );
    let page = browser.text("main");
    for expected in [
        "Web shop (web)",
        "20 %",
        "50 %",
        "100 %",
        "Depends on",
        "auth",
        "plugsync/echo-plugin:1.1.0",
        "Canary: 20 % → 50 % → 100 %, 12s each",
    ] {
        assert!(page.contains(expected), "web's page shows {expected:?}:\n{page}");
    }
    browser.click("button[data-action=\"promote\"]");
    let refused = browser.wait_for("the refusal", LIVE, "const r = document.getElementById('action-result'); return r && r.dataset.kind === 'refused' && r.textContent;");
    let refused = refused.as_str().unwrap_or_default().to_string();
    assert!(refused.contains("401") && refused.contains("refused"), "the page says the API refused: {refused}");
    browser.screenshot("05-promote-refused");
    std::thread::sleep(Duration::from_secs(1));
    let phase = browser.eval("return document.querySelector('.rollout-head').dataset.phase;");
    assert_eq!(phase, "progressing", "a refused promote changes nothing");
    assert!(!dash.repo.status_active("web", V2), "a refused promote changes nothing: {}", dash.status_text("web"));

    browser.type_into("#token-input", TOKEN);
    browser.click("#token-save");
    browser.wait_for(
        "the token to be kept for the tab",
        LIVE,
        "return sessionStorage.getItem('plugsync.apiToken') !== null;",
    );
    browser.click("button[data-action=\"pause\"]");
    browser.wait_for("pause accepted", LIVE, "return document.getElementById('action-result').dataset.kind === 'ok';");
    let paused = browser.wait_for("the canary paused, live", LIVE, "const h = document.querySelector('.rollout-head'); return h && h.dataset.phase === 'paused' && h.dataset.weight;");
    eprintln!("paused at {paused} %: {}", say(browser));
    browser.screenshot("06-paused");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(browser.eval("return document.querySelector('.rollout-head').dataset.phase;"), "paused", "pause holds");

    browser.click("button[data-action=\"promote\"]");
    browser.wait_for(
        "promote accepted",
        LIVE,
        "return document.getElementById('action-result').dataset.kind === 'ok';",
    );
    assert!(say(browser).contains("202"), "{}", say(browser));
    let took = browser.wait_for(
        "the rollout to complete on the page",
        LIVE,
        "const h = document.querySelector('.rollout-head'); const s = document.querySelector('[data-field=\"state\"]'); \
         return h && h.dataset.phase === 'converged' && s && s.textContent === 'ACTIVE';",
    );
    eprintln!("converged on the page: {took}");
    assert_eq!(browser.eval(MARKED), Value::Bool(true), "no reload on web's page");
    dash.wait_active("web", V2, LIVE);
    browser.wait_for(
        "2 instances at 1.1.0",
        LIVE,
        "return document.querySelector('[data-field=\"instances\"]').textContent.startsWith('2 running');",
    );
    browser.screenshot("07-promoted");
}

/// web's page lists its status commits, newest first, each a link to the commit's page, whose
/// commit is on the remote's status branch and whose patch shows web's new status.
fn history_links_to_commits(dash: &Dash, browser: &Browser) {
    // What runs, by content: the digest Docker reports for the 1.1.0 image.
    let image = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &format!("plugsync/echo-plugin:{V2}")])
        .output()
        .expect("docker image inspect");
    let id = String::from_utf8_lossy(&image.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "image id: {image:?}");
    let shown = browser.wait_for(
        "web's stable slot to show its image digest",
        LIVE,
        "const c = document.querySelector('tr[data-slot=\"stable\"] [data-field=\"digest\"] code'); return c && c.title;",
    );
    assert_eq!(shown.as_str(), Some(id.as_str()), "the digest on web's page");
    let newest = browser.wait_for(
        "web's history to show the commit recording 1.1.0",
        LIVE,
        &format!(
            "const a = document.querySelector('#history tbody tr a'); \
             return a && a.closest('tr').innerText.includes('{V2}') ? a.getAttribute('href') : null;"
        ),
    );
    let href = newest.as_str().unwrap_or_default().to_string();
    let sha = href.strip_prefix("/commits/").unwrap_or_default().to_string();
    let on_branch = dash.repo.bare_git(&["branch", "--contains", &sha, "--list", "plugsync/status"]);
    assert!(
        String::from_utf8_lossy(&on_branch.stdout).contains("plugsync/status"),
        "{sha} is not on the remote's status branch: {on_branch:?}"
    );
    let rows = browser.eval("return document.querySelectorAll('#history tbody tr').length;");
    assert!(rows.as_u64().is_some_and(|n| n >= 2), "web's history rows: {rows}");
    browser.click(&format!("#history a[href=\"{href}\"]"));
    browser.wait_for("the commit's page", LIVE, "return document.querySelector('pre.patch') !== null;");
    let added = browser.text("pre.patch");
    assert!(
        added.contains(&format!("+  version: {V2}")) || added.contains(V2),
        "the patch shows web at {V2}:\n{added}"
    );
    assert!(browser.text("pre.message").contains("web"), "the message names web: {}", browser.text("pre.message"));
    assert_eq!(
        browser.eval("return document.querySelector('table.fields a[href=\"/plugins/web\"]') !== null;"),
        Value::Bool(true),
        "the commit page links back to web"
    );
    browser.screenshot("07b-status-commit");
    browser.goto(&dash.url("/commits/0000000"));
    assert!(browser.text("h1").contains("Unknown commit"), "an unknown commit: {}", browser.text("h1"));
}

/// `[a, b]` of the A/B table's row `metric` (`null` without one).
fn ab_row(metric: &str) -> String {
    format!(
        "const r = document.querySelector('table[data-ab] tr[data-metric=\"{metric}\"]'); if (!r) return null; \
         const a = r.querySelector('[data-variant=\"a\"]').textContent, b = r.querySelector('[data-variant=\"b\"]').textContent; \
         return (a === '–' || b === '–' || a === '0' || b === '0') ? null : [a, b];"
    )
}

fn ab_metrics_update(dash: &Dash, browser: &Browser) {
    browser.goto(&dash.url("/plugins/shop"));
    browser.eval(MARK);
    dash.repo.write(&common_daemon::plugin_path("shop"), &shop(V2, "15"));
    dash.repo.commit_push("shop 1.1.0, A/B against 1.0.0");
    let first = browser.wait_for("requests of both variants", LIVE, &ab_row("requests"));
    eprintln!("A/B requests (A, B): {first}");
    browser.screenshot("08-ab-first");
    browser.wait_for(
        "the manifest's sections of the pushed revision, without a reload",
        Duration::from_secs(10),
        "return document.getElementById('catalogue').innerText.includes('plugsync/echo-plugin:1.1.0');",
    );
    let later = browser.wait_for(
        "both variants' metrics to change",
        Duration::from_secs(30),
        &format!("const now = (() => {{ {} }})(); const was = {first}; return now && now[0] !== was[0] && now[1] !== was[1] ? now : null;", ab_row("requests")),
    );
    eprintln!("A/B requests later (A, B): {later}");
    let latency = browser.eval(&ab_row("latency"));
    assert!(latency.is_array(), "latency for A and B: {latency}");
    assert_eq!(browser.eval(MARKED), Value::Bool(true), "no reload on shop's page");
    browser.screenshot("08-ab-live");
    let decided = browser.wait_for(
        "the A/B decision",
        LIVE,
        "const h = document.querySelector('.rollout-head'); return h && ['converged', 'rolledBack', 'failed'].includes(h.dataset.phase) && h.dataset.phase;",
    );
    eprintln!("A/B decided: {decided}; {}", browser.text("#rollout-now .note"));
    browser.screenshot("09-ab-decided");
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let t0 = Instant::now();
    let browser = Browser::start(&shots());
    let dash = Dash::start();
    eprintln!("[{}] fleet ready in {:?}", dash.fleet.name, t0.elapsed());
    fleet_page_lists_and_filters(&dash, &browser);
    let weights = canary_advances_live(&dash, &browser);
    assert!(weights.len() >= 2 && weights.contains(&"20".to_string()), "weights seen on the page: {weights:?}");
    eprintln!("MEASURED weights seen live on the fleet page: {weights:?} ({:?})", t0.elapsed());
    actions_need_the_token(&dash, &browser);
    history_links_to_commits(&dash, &browser);
    ab_metrics_update(&dash, &browser);
    browser.goto(&dash.url("/"));
    browser.wait_for(
        "the fleet after it all",
        LIVE,
        "return document.getElementById('live-state').textContent === 'live';",
    );
    browser.screenshot("10-fleet-after");
    dash.daemon_alive();
    eprintln!("screenshots in {}; test took {:?}", browser.shots.display(), t0.elapsed());
}

impl Dash {
    fn daemon_alive(&self) {
        let (code, _) = common_daemon::http_get(&self.url("/healthz")).unwrap_or((0, String::new()));
        assert_eq!(code, 200, "the daemon still answers");
    }
}
