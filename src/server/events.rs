//! `GET /api/v1/events`: the daemon's live events as server-sent events (`event: status |
//! rollout | log`, `data:` the event as JSON). A subscriber first gets the latest status and
//! every rollout known, then the stream; `?plugin=ID` keeps only that plugin's rollout and
//! log events (status documents always pass). One that falls too far behind gets a `lagged`
//! event saying how many it missed, and goes on.

use super::ServerState;
use crate::events::{Event, Published};
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, serde::Deserialize)]
pub struct Filter {
    plugin: Option<String>,
}

impl Filter {
    fn admits(&self, event: &Event) -> bool {
        let Some(wanted) = self.plugin.as_deref() else { return true };
        match event {
            Event::Status { .. } => true,
            Event::Rollout(live) => live.plugin == wanted,
            // Narration lines start with the plugin's id ("crm: …", "crm [canary]: …").
            Event::Log { line, .. } => {
                line.strip_prefix(wanted).is_some_and(|rest| rest.starts_with(':') || rest.starts_with(" ["))
            }
        }
    }
}

/// Serialized once per event, whatever the number of subscribers (see [`Published`]).
fn encode(event: &Published) -> SseEvent {
    SseEvent::default().event(event.name()).data(event.json())
}

pub async fn events(
    State(st): State<ServerState>,
    Query(filter): Query<Filter>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (first, receiver) = st.events.subscribe();
    let first: Vec<Published> = first.into_iter().filter(|e| filter.admits(e)).collect();
    let backlog = stream::iter(first.into_iter().map(|e| Ok(encode(&e))));
    let live = stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) if filter.admits(&event) => return Some((Ok(encode(&event)), (receiver, filter))),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    let lagged = SseEvent::default().event("lagged").data(missed.to_string());
                    return Some((Ok(lagged), (receiver, filter)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(futures_util::StreamExt::chain(backlog, live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_filter_keeps_its_lines_and_every_status() {
        let filter = Filter { plugin: Some("crm".into()) };
        let log = |line: &str| Event::Log { at: String::new(), line: line.into() };
        for (event, admitted) in [
            (log("crm: update (image a → b)"), true),
            (log("crm [canary]: canary 10 %"), true),
            (log("crmx: update"), false),
            (log("web: converged"), false),
            (Event::Status { status: serde_json::Value::Null }, true),
        ] {
            assert_eq!(filter.admits(&event), admitted, "{event:?}");
        }
        assert!(Filter { plugin: None }.admits(&log("web: converged")));
    }
}
