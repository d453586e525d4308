//! The live dashboard the daemon serves: `GET /` (the fleet), `GET /plugins/{id}` (one plugin),
//! `GET /plugins/{id}/live` and `/plugins/{id}/catalogue` (that page's live part and its
//! catalogue sections alone, for the script to swap in), `GET /commits/{sha}` (one status
//! commit: its message and patch) and `GET /assets/{name}` (the embedded
//! stylesheet and script).
//!
//! Pages are rendered on the server from what the API already holds (the loaded fleet, the
//! status document, the event bus's rollouts), so they read without script; a little script
//! (`assets/dashboard.js`, no build step, nothing from the internet) keeps them live over the
//! event stream (`/api/v1/events`), filters the fleet table, and sends the rollout actions with
//! the API token the person entered, kept in the tab's `sessionStorage`. The API answers a
//! missing or wrong token with 401, and the page says so. Pages allow only their own origin's
//! script and style (Content-Security-Policy), so text from a manifest can never run.

mod assets;
mod commit_page;
mod fleet_page;
mod plugin_page;
mod render;
mod rollout_view;
mod view;

#[cfg(test)]
mod tests;

use super::ServerState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use view::View;

/// The dashboard's routes, to merge into the API's router.
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/", get(fleet))
        .route("/plugins/{id}", get(plugin))
        .route("/plugins/{id}/live", get(plugin_live))
        .route("/plugins/{id}/catalogue", get(plugin_catalogue))
        .route("/commits/{sha}", get(commit))
        .route("/assets/{name}", get(asset))
}

/// The fleet page's HTML for `view` (what `GET /` serves; public for the benchmark).
pub fn fleet_html(view: &View) -> String {
    fleet_page::render(view)
}

/// A plugin page's HTML, `None` for a plugin nobody knows.
pub fn plugin_html(view: &View, id: &str) -> Option<String> {
    plugin_page::render(view, id)
}

/// Only this origin's script, style and connections; no frames, forms or plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn html(status: StatusCode, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (status, headers, body).into_response()
}

/// The loaded fleet, the status document and the rollouts, rendered by `page` at once (the
/// status stays read-locked only while it renders).
async fn with_view<T>(st: &ServerState, page: impl FnOnce(&View) -> T) -> T {
    let loaded: Option<Arc<crate::model::Loaded>> = st.fleet.read().await.clone();
    let rollouts: BTreeMap<_, _> = st.events.rollouts();
    let doc = st.status.read().await;
    let history = st.history.read().await;
    let mut view = View::new(loaded.as_deref().map(|l| &l.fleet), &doc, rollouts, chrono::Utc::now());
    view.history = &history;
    page(&view)
}

async fn fleet(State(st): State<ServerState>) -> Response {
    html(StatusCode::OK, with_view(&st, fleet_page::render).await)
}

/// Catalogue links between plugins are `<id>.html`; ids never hold a dot.
fn plugin_id(id: &str) -> &str {
    id.strip_suffix(".html").unwrap_or(id)
}

/// A 404 page: `title`, and `what` (HTML) said in a sentence.
fn not_found(title: &str, what: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"{}\"></head><body><main><h1>{title}</h1><p>{what} \
         <a href=\"/\">Back to the fleet</a>.</p></main></body></html>",
        assets::CSS_URL.as_str(),
    );
    html(StatusCode::NOT_FOUND, body)
}

fn unknown(id: &str) -> Response {
    not_found("Unknown plugin", &format!("Neither Git nor the status knows a plugin <code>{}</code>.", render::esc(id)))
}

async fn plugin(State(st): State<ServerState>, Path(id): Path<String>) -> Response {
    let id = plugin_id(&id);
    match with_view(&st, |view| plugin_page::render(view, id)).await {
        Some(body) => html(StatusCode::OK, body),
        None => unknown(id),
    }
}

/// A part of a plugin's page: the live part or the catalogue's sections.
async fn part(st: &ServerState, id: &str, render: fn(&View, &str) -> String) -> Response {
    let known = |view: &View| view.plugin(id).is_some() || view.statuses.contains_key(id);
    match with_view(st, |view| known(view).then(|| render(view, id))).await {
        Some(body) => html(StatusCode::OK, body),
        None => unknown(id),
    }
}

async fn plugin_live(State(st): State<ServerState>, Path(id): Path<String>) -> Response {
    part(&st, plugin_id(&id), plugin_page::live).await
}

async fn plugin_catalogue(State(st): State<ServerState>, Path(id): Path<String>) -> Response {
    part(&st, plugin_id(&id), plugin_page::catalogue).await
}

async fn commit(State(st): State<ServerState>, Path(sha): Path<String>) -> Response {
    match with_view(&st, |view| commit_page::render(view, &sha)).await {
        Some(body) => html(StatusCode::OK, body),
        None => not_found(
            "Unknown commit",
            &format!(
                "No status commit <code>{}</code> among the last {} on the status branch.",
                render::esc(&sha),
                crate::status::history::KEPT
            ),
        ),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::get(&name) {
        Some((content_type, text)) => {
            let headers = [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                // The URL carries the content's fingerprint.
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ];
            (StatusCode::OK, headers, text).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
