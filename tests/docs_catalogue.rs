//! `plugsync docs`: the real binary on `examples/fleet` writes a catalogue whose every relative
//! link (HTML `href`, Markdown `](…)`, `#anchor`s included) leads to a file and heading that
//! exist, with one page per plugin, the index linking to each, every `dependsOn` edge in the
//! three graphs (Mermaid, SVG, Graphviz), and "used by" the exact reverse of "depends on". With
//! `--status-branch` the recorded state shows on the pages. Needs git; nothing running.

use plugsync::model::{self, Fleet};
use plugsync::status::book::{DriftStatus, FailedRollout, SlotStatus};
use plugsync::status::{Lifecycle, PluginStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type Edges = BTreeSet<(String, String)>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugsync")).arg("docs").args(args).output().expect("run plugsync docs")
}

fn docs_ok(args: &[&str]) -> String {
    let out = docs(args);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "plugsync docs {args:?} failed ({:?}):\n{said}", out.status);
    said
}

/// The example fleet as the manifests say it, read by the library, not by the catalogue.
fn example_fleet() -> Fleet {
    let files = plugsync::source::dir::read_fleet_dir(&root().join("examples/fleet")).expect("read examples/fleet");
    let loaded = model::load(&files, None);
    assert!(loaded.is_valid(), "examples/fleet is valid: {:#?}", loaded.diagnostics);
    loaded.fleet
}

/// Every `dependsOn` edge of the manifests (a fixed canary's own included), as (user, dependency).
fn manifest_edges(fleet: &Fleet) -> Edges {
    let mut edges = Edges::new();
    for p in fleet.plugins.values() {
        let canary = p.canary.iter().flat_map(|c| c.manifest.depends_on.iter());
        for dep in p.manifest.depends_on.iter().chain(canary) {
            edges.insert((p.id.clone(), dep.clone()));
        }
    }
    edges
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every value of `attr="…"` in `text`, HTML entities for `&` undone.
fn attributes(text: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        let after = &rest[i + needle.len()..];
        let end = after.find('"').expect("attribute closed");
        // `data-href` and the like are not links: the name must start the attribute.
        if i == 0 || rest[..i].ends_with(char::is_whitespace) {
            out.push(after[..end].replace("&amp;", "&"));
        }
        rest = &after[end..];
    }
    out
}

/// Every Markdown link target `](…)`, outside fenced code.
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').expect("link closed");
            if !rest[..i].ends_with('\\') {
                out.push(after[..end].to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

/// Anchors a Git forge makes of a page's headings: lowercase, `-` for spaces, punctuation gone.
fn markdown_anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim_start_matches('#').strip_prefix(' ').filter(|_| l.starts_with('#')))
        .map(|title| {
            title
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    let text = read(path);
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => attributes(&text, "id").into_iter().collect(),
        _ => markdown_anchors(&text),
    }
}

fn is_absolute(link: &str) -> bool {
    ["http://", "https://", "mailto:"].iter().any(|s| link.starts_with(s))
}

/// Checks every relative link of every page; returns page → its relative links (as written).
fn check_links(out: &Path) -> BTreeMap<PathBuf, Vec<String>> {
    let mut all = BTreeMap::new();
    for page in files_under(out) {
        let ext = page.extension().and_then(|e| e.to_str()).unwrap_or("").to_string();
        let text = read(&page);
        let links = match ext.as_str() {
            "html" => attributes(&text, "href"),
            "md" => markdown_links(&text),
            _ => continue,
        };
        let mut relative = Vec::new();
        for link in links.into_iter().filter(|l| !is_absolute(l)) {
            let (file, anchor) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
            let target = if file.is_empty() { page.clone() } else { page.parent().expect("folder").join(file) };
            assert!(
                target.is_file(),
                "{}: link {link:?} leads to {}, which does not exist",
                page.display(),
                target.display()
            );
            let target_ext = target.extension().and_then(|e| e.to_str()).unwrap_or("");
            assert!(
                target_ext == ext || target_ext == "dot",
                "{}: link {link:?} crosses formats ({ext} → {target_ext})",
                page.display()
            );
            if let Some(anchor) = anchor {
                let found = anchors(&target);
                assert!(found.contains(anchor), "{}: link {link:?}: no #{anchor} in {found:?}", page.display());
            }
            relative.push(link);
        }
        all.insert(page, relative);
    }
    all
}

/// The plugin ids of a list of links to `plugins/<id>.<ext>` (or `<id>.<ext>` beside them).
fn linked_ids(links: &[String], ext: &str) -> BTreeSet<String> {
    links
        .iter()
        .filter_map(|l| l.split('#').next()?.strip_suffix(&format!(".{ext}")))
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_string())
        .filter(|id| id != "index")
        .collect()
}

/// `(user, dependency)` edges of the first Mermaid block: `nI["id · Name"]` nodes, `nI --> nJ`.
fn mermaid_edges(md: &str) -> Edges {
    let block = md.split("```mermaid\n").nth(1).and_then(|b| b.split("```").next()).expect("a mermaid block");
    let mut ids = BTreeMap::new();
    let mut edges = Edges::new();
    for line in block.lines().map(str::trim) {
        if let Some((node, label)) = line.split_once("[\"") {
            let id = label.split([' ', '"']).next().expect("an id").to_string();
            ids.insert(node.to_string(), id);
        } else if let Some((from, to)) = line.split_once(" --> ") {
            edges.insert((from.to_string(), to.to_string()));
        }
    }
    edges.into_iter().map(|(f, t)| (ids[&f].clone(), ids[&t].clone())).collect()
}

fn svg_edges(html: &str) -> Edges {
    let from = attributes(html, "data-from");
    let to = attributes(html, "data-to");
    assert_eq!(from.len(), to.len());
    from.into_iter().zip(to).collect()
}

fn dot_edges(dot: &str) -> Edges {
    dot.lines()
        .filter_map(|l| l.trim().strip_suffix(';')?.split_once(" -> "))
        .map(|(a, b)| (a.trim_matches('"').to_string(), b.trim_matches('"').to_string()))
        .collect()
}

/// The plugins a page's "Depends on" / "Used by" line links to, in Markdown and in HTML.
fn relation(md: &str, html: &str, label: &str) -> BTreeSet<String> {
    let md_line = md.lines().find(|l| l.starts_with(&format!("- **{label}:**"))).expect("the relation line");
    let from_md = linked_ids(&markdown_links(md_line), "md");
    let row = html.split(&format!("<tr><th>{label}</th>")).nth(1).and_then(|r| r.split("</tr>").next()).expect("row");
    let from_html = linked_ids(&attributes(row, "href"), "html");
    assert_eq!(from_md, from_html, "{label}: Markdown and HTML agree");
    from_md
}

#[test]
fn the_example_fleet_catalogue_links_correctly_and_draws_every_dependency() {
    let fleet = example_fleet();
    let out = tempfile::tempdir().expect("tempdir");
    let said = docs_ok(&[root().join("examples/fleet").to_str().unwrap(), "-o", out.path().to_str().unwrap()]);
    assert!(said.contains("catalogue of 6 plugins"), "{said}");
    let links = check_links(out.path());
    let checked: usize = links.values().map(Vec::len).sum();
    let with_anchor = links.values().flatten().filter(|l| l.contains('#')).count();
    assert!(checked > 100 && with_anchor > 30, "{checked} relative links checked, {with_anchor} with an anchor");

    let ids: BTreeSet<String> = fleet.plugins.keys().cloned().collect();
    for ext in ["md", "html"] {
        let pages: BTreeSet<String> = files_under(&out.path().join("plugins"))
            .iter()
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(pages, ids, "one .{ext} page per plugin");
        let index = &links[&out.path().join(format!("index.{ext}"))];
        assert_eq!(linked_ids(index, ext), ids, "index.{ext} links to every plugin page");
        for id in &ids {
            let page = &links[&out.path().join(format!("plugins/{id}.{ext}"))];
            assert!(page.contains(&format!("../index.{ext}")), "{id}.{ext} links back to the index");
        }
    }

    let edges = manifest_edges(&fleet);
    assert!(edges.len() >= 4, "the example fleet has dependencies: {edges:?}");
    let read_out = |p: &str| read(&out.path().join(p));
    assert_eq!(mermaid_edges(&read_out("index.md")), edges, "mermaid graph of the index");
    assert_eq!(svg_edges(&read_out("index.html")), edges, "SVG graph of the index");
    assert_eq!(dot_edges(&read_out("dependencies.dot")), edges, "dependencies.dot");

    let mut depends_on = Edges::new();
    let mut used_by = Edges::new();
    for id in &ids {
        let (md, html) = (read_out(&format!("plugins/{id}.md")), read_out(&format!("plugins/{id}.html")));
        let own: Edges = edges.iter().filter(|(u, d)| u == id || d == id).cloned().collect();
        if !own.is_empty() {
            assert!(mermaid_edges(&md).is_superset(&own), "{id}.md draws its own edges");
            assert!(svg_edges(&html).is_superset(&own), "{id}.html draws its own edges");
        }
        depends_on.extend(relation(&md, &html, "Depends on").into_iter().map(|d| (id.clone(), d)));
        used_by.extend(relation(&md, &html, "Used by").into_iter().map(|u| (u, id.clone())));
    }
    assert_eq!(depends_on, edges, "each page's \"Depends on\" is its manifest's dependsOn");
    assert_eq!(used_by, depends_on, "\"Used by\" is the reverse of \"Depends on\"");

    let crm = read_out("plugins/crm.html");
    for want in ["http://crm:8080/openapi.json", "Canary: 25 % → 50 % → 75 % → 100 %, 1m each", "policy canary-prod"]
    {
        assert!(crm.contains(want), "{want} on crm's page");
    }
    assert!(read_out("plugins/auth.md").contains("`AUTH_SIGNING_KEY`"), "secret env names are shown");
    // Env values may be secrets: none long enough to be told apart from other text is shown.
    let values: Vec<&String> =
        fleet.plugins.values().flat_map(|p| p.manifest.env.values()).filter(|v| v.len() >= 8).collect();
    assert!(!values.is_empty(), "the example fleet has env values to look for");
    for page in files_under(out.path()) {
        let text = read(&page);
        for value in &values {
            assert!(!text.contains(value.as_str()), "{} shows the env value {value:?}", page.display());
        }
    }
    assert!(!read_out("index.html").contains("<script"), "no script in the pages");

    // Run again into the same folder: the files are overwritten, not appended to.
    docs_ok(&[root().join("examples/fleet").to_str().unwrap(), "-o", out.path().to_str().unwrap()]);
    assert_eq!(read_out("index.html").matches("<h1>").count(), 1);
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Plugsync Test", "-c", "user.email=test@plugsync.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn crm_status() -> PluginStatus {
    PluginStatus {
        plugin: "crm".into(),
        state: Lifecycle::RolledBack,
        desired_version: Some("2.3.0".into()),
        strategy: Some("Canary".into()),
        revision: Some("34c50c9e2f0a1b2c3d4e5f60718293a4b5c6d7e8".into()),
        slots: [("stable".to_string(), SlotStatus { version: "2.2.0".into(), instances: 3, digest: None })].into(),
        last_change: None,
        failed: Some(FailedRollout {
            revision: "34c50c9e2f0a1b2c3d4e5f60718293a4b5c6d7e8".into(),
            version: "2.3.0".into(),
            spec_hash: "abc123".into(),
            reason: "error rate 7 % > 1 %".into(),
            at: "2026-12-04T11:00:00Z".into(),
        }),
        last_error: None,
        rollout: None,
        applied: None,
        drift: Some(DriftStatus {
            open: true,
            findings: vec!["stopped crm-2: expected running, found exited".into()],
            detected_at: "2026-12-04T11:05:00Z".into(),
            resolved_at: None,
        }),
    }
}

#[test]
fn status_branch_state_shows_on_the_pages() {
    let repo = tempfile::tempdir().expect("tempdir");
    plugsync::source::dir::copy_tree(&root().join("examples/fleet"), repo.path()).expect("copy the fleet");
    git(repo.path(), &["init", "-q", "--initial-branch=main"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-qm", "fleet"]);
    git(repo.path(), &["checkout", "-q", "--orphan", "plugsync/status"]);
    git(repo.path(), &["rm", "-rfq", "."]);
    std::fs::create_dir_all(repo.path().join("status")).expect("mkdir status");
    // Written as the status room writes it.
    std::fs::write(repo.path().join("status/crm.yaml"), plugsync::status::book::to_yaml(&crm_status())).expect("write");
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-qm", "crm: ROLLED_BACK"]);
    git(repo.path(), &["checkout", "-q", "-f", "main"]);

    let out = tempfile::tempdir().expect("tempdir");
    let (fleet_dir, out_dir) = (repo.path().to_str().unwrap(), out.path().to_str().unwrap());
    docs_ok(&[fleet_dir, "-o", out_dir, "--status-branch", "plugsync/status"]);
    check_links(out.path());
    let crm = read(&out.path().join("plugins/crm.html"));
    for want in [
        "<h2 id=\"status\">Status</h2>",
        "<code>ROLLED_BACK</code>",
        "stable 2.2.0 × 3",
        "<code>34c50c9</code>",
        "version 2.3.0 at revision 34c50c9: error rate 7 % &gt; 1 %",
        "open since 2026-12-04T11:05:00Z: stopped crm-2",
        "plugsync/status at ",
    ] {
        assert!(crm.contains(want), "{want:?} on crm's page:\n{crm}");
    }
    assert!(read(&out.path().join("plugins/auth.md")).contains("No status recorded for this plugin."));
    let index = read(&out.path().join("index.html"));
    assert!(index.contains("<a href=\"plugins/crm.html#status\">ROLLED_BACK</a>"), "{index}");

    let missing = docs(&[fleet_dir, "-o", out_dir, "--status-branch", "no/such-branch"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "a missing status branch fails");
    assert!(stderr.contains("has no branch no/such-branch"), "{stderr}");

    let plain = tempfile::tempdir().expect("tempdir");
    plugsync::source::dir::copy_tree(&root().join("examples/fleet"), plain.path()).expect("copy the fleet");
    let outside = docs(&[plain.path().to_str().unwrap(), "-o", out_dir, "--status-branch", "plugsync/status"]);
    let stderr = String::from_utf8_lossy(&outside.stderr);
    assert!(!outside.status.success() && stderr.contains("is not inside a Git repository"), "{stderr}");
}

#[test]
fn an_invalid_fleet_writes_nothing_and_says_why() {
    let fleet = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(fleet.path().join("plugins/a")).expect("mkdir");
    std::fs::write(
        fleet.path().join("plugins/a/plugin.yaml"),
        "id: a\nversion: 1.0.0\nruntime: {image: x}\ndependsOn: [ghost]\n",
    )
    .expect("write");
    let out = tempfile::tempdir().expect("tempdir");
    let run = docs(&[fleet.path().to_str().unwrap(), "-o", out.path().join("site").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("plugin.yaml") && stderr.contains("ghost"), "the diagnostics are printed:\n{stderr}");
    assert!(!out.path().join("site").exists(), "nothing written");
}
