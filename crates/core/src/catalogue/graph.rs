//! The dependency graph: a small layered layout (columns by depth, rows ordered to keep lines
//! short) and its text forms, Mermaid for Markdown and Graphviz `dot`. The HTML pages draw the
//! same layout as SVG.
//!
//! An arrow points from a plugin to what it depends on. Columns by dependency depth: plugins
//! depending on nothing are in the last column, every other plugin one column left of its
//! deepest dependency, so every arrow of a cycle-free fleet points right, as Mermaid's
//! `flowchart LR` draws it, and the usual fleet (everything on one foundation) needs no arrow
//! longer than one column. A longer arrow is routed through the gaps between the boxes of
//! the columns it crosses. A dependency outside the fleet is an external node.

use super::dependencies;
use crate::model::Fleet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// Display name (the manifest's `name`), if any.
    pub name: Option<String>,
    /// Not a plugin of this fleet: drawn, never linked.
    pub external: bool,
    /// The plugin whose page this graph is on.
    pub focus: bool,
    pub column: usize,
    pub row: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layout {
    /// Sorted by id.
    pub nodes: Vec<Node>,
    /// (user, dependency) as indexes into `nodes`, sorted.
    pub edges: Vec<(usize, usize)>,
}

/// Node size and spacing of the SVG drawing, in pixels.
pub const NODE_WIDTH: usize = 170;
pub const NODE_HEIGHT: usize = 44;
pub const COLUMN_GAP: usize = 70;
pub const ROW_GAP: usize = 22;
pub const MARGIN: usize = ROW_GAP;

impl Layout {
    /// The whole fleet (`focus: None`), or one plugin with everything it depends on and
    /// everything using it, directly or not.
    pub fn of(fleet: &Fleet, focus: Option<&str>) -> Layout {
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for plugin in fleet.plugins.values() {
            let own = deps.entry(plugin.id.clone()).or_default();
            own.extend(dependencies(plugin));
        }
        let keep = match focus {
            Some(id) => neighbourhood(&deps, id),
            None => deps.iter().flat_map(|(id, d)| d.iter().chain([id])).cloned().collect(),
        };
        let nodes: Vec<Node> = keep
            .iter()
            .map(|id| Node {
                id: id.clone(),
                name: fleet.plugins.get(id).and_then(|p| p.manifest.name.clone()),
                external: !fleet.plugins.contains_key(id),
                focus: focus == Some(id.as_str()),
                column: 0,
                row: 0,
            })
            .collect();
        let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
        let mut edges: Vec<(usize, usize)> = deps
            .iter()
            .filter_map(|(user, d)| Some((index.get(user.as_str())?, d)))
            .flat_map(|(u, d)| d.iter().filter_map(|dep| Some((*u, *index.get(dep.as_str())?))))
            .collect();
        edges.sort_unstable();
        edges.dedup();
        let mut layout = Layout { nodes, edges };
        layout.assign_columns();
        layout.assign_rows();
        layout
    }

    /// Dependency depth (the longest chain of dependencies below), the deepest on the left. A
    /// cycle (a validation error, but the page must still render) stops growing after as many
    /// rounds as there are nodes.
    fn assign_columns(&mut self) {
        let n = self.nodes.len();
        let mut depth = vec![0usize; n];
        for _ in 0..n {
            let mut changed = false;
            for &(user, dep) in &self.edges {
                if depth[user] < depth[dep] + 1 && depth[dep] + 1 < n {
                    depth[user] = depth[dep] + 1;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let deepest = depth.iter().copied().max().unwrap_or(0);
        for (node, d) in self.nodes.iter_mut().zip(depth) {
            node.column = deepest - d;
        }
    }

    /// The first column in id order; each next one by the mean row of its users in earlier
    /// columns (ties and nodes without such users by id), which keeps arrows short.
    fn assign_rows(&mut self) {
        let columns = self.columns();
        let mut row = vec![0.0f64; self.nodes.len()];
        for members in columns {
            let mut keyed: Vec<(f64, usize)> = members
                .iter()
                .map(|&m| {
                    let users: Vec<f64> = self
                        .edges
                        .iter()
                        .filter(|&&(u, d)| d == m && self.nodes[u].column < self.nodes[m].column)
                        .map(|&(u, _)| row[u])
                        .collect();
                    let key = if users.is_empty() { f64::MAX } else { users.iter().sum::<f64>() / users.len() as f64 };
                    (key, m)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (r, (_, m)) in keyed.into_iter().enumerate() {
                row[m] = r as f64;
                self.nodes[m].row = r;
            }
        }
    }

    /// Node indexes per column, left to right, each in id order.
    pub fn columns(&self) -> Vec<Vec<usize>> {
        let count = self.nodes.iter().map(|n| n.column + 1).max().unwrap_or(0);
        let mut columns = vec![Vec::new(); count];
        for (i, node) in self.nodes.iter().enumerate() {
            columns[node.column].push(i);
        }
        columns
    }

    /// Top-left corner of a node in the SVG drawing.
    pub fn position(&self, node: usize) -> (usize, usize) {
        let n = &self.nodes[node];
        (MARGIN + n.column * (NODE_WIDTH + COLUMN_GAP), MARGIN + n.row * (NODE_HEIGHT + ROW_GAP))
    }

    /// Width and height of the SVG drawing.
    pub fn size(&self) -> (usize, usize) {
        let columns = self.nodes.iter().map(|n| n.column + 1).max().unwrap_or(0);
        let rows = self.nodes.iter().map(|n| n.row + 1).max().unwrap_or(0);
        let extent = |count: usize, size: usize, gap: usize| {
            if count == 0 {
                2 * MARGIN
            } else {
                2 * MARGIN + count * size + (count - 1) * gap
            }
        };
        (extent(columns, NODE_WIDTH, COLUMN_GAP), extent(rows, NODE_HEIGHT, ROW_GAP))
    }

    /// The points a line from `user` to `dep` passes: out of one box, through the gap between
    /// rows nearest the straight line in every column it crosses, into the other box.
    pub fn route(&self, user: usize, dep: usize) -> Vec<(usize, usize)> {
        let ((ux, uy), (dx, dy)) = (self.position(user), self.position(dep));
        let (uc, dc) = (self.nodes[user].column, self.nodes[dep].column);
        if uc == dc {
            return if uy < dy {
                vec![(ux + NODE_WIDTH / 2, uy + NODE_HEIGHT), (dx + NODE_WIDTH / 2, dy)]
            } else {
                vec![(ux + NODE_WIDTH / 2, uy), (dx + NODE_WIDTH / 2, dy + NODE_HEIGHT)]
            };
        }
        let rightwards = uc < dc;
        let (out_y, in_y) = (uy + self.port(user, dep, false), dy + self.port(dep, user, true));
        let (start, end) =
            if rightwards { ((ux + NODE_WIDTH, out_y), (dx, in_y)) } else { ((ux, out_y), (dx + NODE_WIDTH, in_y)) };
        let rows = self.nodes.iter().map(|n| n.row + 1).max().unwrap_or(0);
        let mut points = vec![start];
        let crossed: Vec<usize> = if rightwards { (uc + 1..dc).collect() } else { (dc + 1..uc).rev().collect() };
        for (k, column) in crossed.iter().enumerate() {
            let share = (k + 1) as f64 / (crossed.len() + 1) as f64;
            let straight = start.1 as f64 + (end.1 as f64 - start.1 as f64) * share;
            let pitch = (NODE_HEIGHT + ROW_GAP) as f64;
            let gap = ((straight - (MARGIN - ROW_GAP / 2) as f64) / pitch).round().clamp(0.0, rows as f64) as usize;
            let y = MARGIN + gap * (NODE_HEIGHT + ROW_GAP) - ROW_GAP / 2;
            let left = MARGIN + column * (NODE_WIDTH + COLUMN_GAP);
            let (a, b) = if rightwards { (left, left + NODE_WIDTH) } else { (left + NODE_WIDTH, left) };
            points.extend([(a, y), (b, y)]);
        }
        points.push(end);
        points
    }

    /// Where on its side of `node`'s box the line to or from `other` attaches: the lines on
    /// one side spread evenly, in the order of the rows they come from, so arrowheads never
    /// pile up on one point.
    fn port(&self, node: usize, other: usize, incoming: bool) -> usize {
        let side = |o: usize| self.nodes[o].column.cmp(&self.nodes[node].column);
        let mut peers: Vec<usize> = self
            .edges
            .iter()
            .filter_map(|&(u, d)| if incoming { (d == node).then_some(u) } else { (u == node).then_some(d) })
            .filter(|&o| side(o) == side(other))
            .collect();
        peers.sort_by_key(|&o| (self.nodes[o].row, o));
        let k = peers.iter().position(|&o| o == other).unwrap_or(0);
        (k + 1) * NODE_HEIGHT / (peers.len() + 1)
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The edges as (user id, dependency id).
    pub fn edge_ids(&self) -> Vec<(&str, &str)> {
        self.edges.iter().map(|&(u, d)| (self.nodes[u].id.as_str(), self.nodes[d].id.as_str())).collect()
    }
}

/// `id`, everything it reaches through dependencies, and everything reaching it.
fn neighbourhood(deps: &BTreeMap<String, BTreeSet<String>>, id: &str) -> BTreeSet<String> {
    let mut users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (user, d) in deps {
        for dep in d {
            users.entry(dep.as_str()).or_default().insert(user.as_str());
        }
    }
    let mut keep = BTreeSet::from([id.to_string()]);
    for follow in [true, false] {
        let mut stack = vec![id.to_string()];
        while let Some(next) = stack.pop() {
            let neighbours: Vec<&str> = if follow {
                deps.get(&next).into_iter().flatten().map(String::as_str).collect()
            } else {
                users.get(next.as_str()).into_iter().flatten().copied().collect()
            };
            for n in neighbours {
                if keep.insert(n.to_string()) {
                    stack.push(n.to_string());
                }
            }
        }
    }
    keep
}

/// The label people read on a node: the id, and the name when it says more.
pub fn label(node: &Node) -> String {
    match (&node.name, node.external) {
        (_, true) => format!("{} (not in this fleet)", node.id),
        (Some(name), _) if name != &node.id => format!("{} · {name}", node.id),
        _ => node.id.clone(),
    }
}

/// Mermaid `flowchart LR`: node `n<i>` per node, labelled with its id (and name), one
/// `user --> dependency` line per edge, externals dashed, the focus highlighted.
pub fn mermaid(layout: &Layout) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, node) in layout.nodes.iter().enumerate() {
        let _ = writeln!(out, "    n{i}[\"{}\"]", mermaid_text(&label(node)));
    }
    for &(user, dep) in &layout.edges {
        let _ = writeln!(out, "    n{user} --> n{dep}");
    }
    let externals: Vec<String> =
        (0..layout.nodes.len()).filter(|&i| layout.nodes[i].external).map(|i| format!("n{i}")).collect();
    if !externals.is_empty() {
        out.push_str("    classDef external stroke-dasharray: 5 5,fill:#f6f6f6\n");
        let _ = writeln!(out, "    class {} external", externals.join(","));
    }
    if let Some(focus) = layout.nodes.iter().position(|n| n.focus) {
        out.push_str("    classDef focus stroke-width:3px,fill:#e8f0fe\n");
        let _ = writeln!(out, "    class n{focus} focus");
    }
    out
}

/// Text inside a quoted Mermaid label: quotes, angle brackets and `#` as Mermaid entities.
pub fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Graphviz: one node per plugin (linked to its page through `URL`, for `dot -Tsvg`), one edge
/// per dependency, externals dashed.
pub fn dot(layout: &Layout) -> String {
    let mut out = String::from(
        "// The fleet's dependencies: an arrow points from a plugin to what it depends on.\n\
         // Render: dot -Tsvg dependencies.dot > dependencies.svg\n\
         digraph dependencies {\n    rankdir=LR;\n    node [shape=box, style=rounded, fontname=\"sans-serif\"];\n",
    );
    for node in &layout.nodes {
        let id = dot_text(&node.id);
        let label = dot_text(&label(node));
        if node.external {
            let _ = writeln!(out, "    \"{id}\" [label=\"{label}\", style=\"rounded,dashed\"];");
        } else {
            let url = dot_text(&super::page_path(&node.id, "html"));
            let _ = writeln!(out, "    \"{id}\" [label=\"{label}\", URL=\"{url}\"];");
        }
    }
    for (user, dep) in layout.edge_ids() {
        let _ = writeln!(out, "    \"{}\" -> \"{}\";", dot_text(user), dot_text(dep));
    }
    out.push_str("}\n");
    out
}

/// Text inside a double-quoted Graphviz string.
pub fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace(['\r', '\n'], " ")
}
