//! `GET /v1/watch`: changes as Server-Sent Events, resumable without gap or duplicate.
//!
//! Every change is one SSE event (`event: put` or `event: delete`) whose `id:` is
//! `<revision>.<n>`: the change's revision and its index among this watch's changes of
//! that revision. The first event, `event: created`, carries `id: <revision>` meaning
//! "everything up to this revision is behind you" (none on a resumed stream). A client
//! that reconnects with `Last-Event-ID` resumes exactly after that event: `R` resumes
//! at revision R+1, `R.n` re-reads revision R and skips its first n+1 changes (a
//! revision's changes always come in the same order). The SDK underneath resumes
//! across member failures the same way, so neither a gateway nor a member failure
//! loses or repeats a change.
//!
//! Keep-alive comments are sent every `--sse-keep-alive`. A compaction past the resume
//! point ends the stream with `event: error` (`code: compacted`); a draining gateway
//! ends it with `event: shutdown` (reconnect, through the load balancer, with
//! `Last-Event-ID`).

use std::convert::Infallible;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use conclave_client::watch::Watch;
use conclave_client::{Error, EventKind, WatchStream};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::KvDto;
use crate::auth::Caller;
use crate::encoding::Encoding;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Q;
use crate::metrics::StreamGuard;
use crate::AppState;

/// Query of `GET /v1/watch`: `key` or `prefix`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// Watch this key.
    pub key: Option<String>,
    /// Watch every key with this prefix (empty: every key).
    pub prefix: Option<String>,
    /// Start at this revision, replaying history (default: changes from now on).
    /// `Last-Event-ID` wins over it.
    pub start_revision: Option<i64>,
    /// Include each key's previous value.
    pub prev_kv: Option<bool>,
    /// `utf8` (default) or `base64`.
    pub encoding: Option<Encoding>,
}

/// The data of a `put` or `delete` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatchEvent {
    /// `put` or `delete`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The key after the change (for a delete: empty value, the deletion's revision
    /// as `mod_revision`).
    #[serde(flatten)]
    pub kv: KvDto,
    /// The key before the change, with `prev_kv=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev_kv: Option<KvDto>,
}

/// Where a stream resumes, from `Last-Event-ID` or the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The revision to start the watch at (0 = now).
    pub start: i64,
    /// How many changes of revision `start` were already delivered.
    pub skip: usize,
}

/// Parses a `Last-Event-ID` made by this API: `R` or `R.n`.
pub fn parse_event_id(id: &str) -> Option<Resume> {
    let id = id.trim();
    match id.split_once('.') {
        None => {
            let revision: i64 = id.parse().ok()?;
            (revision >= 0).then_some(Resume {
                start: revision.checked_add(1)?,
                skip: 0,
            })
        }
        Some((revision, index)) => {
            let revision: i64 = revision.parse().ok()?;
            let index: usize = index.parse().ok()?;
            (revision > 0).then_some(Resume {
                start: revision,
                skip: index.checked_add(1)?,
            })
        }
    }
}

/// Numbers the changes of each revision, skipping those already delivered.
#[derive(Debug)]
struct Numbering {
    revision: i64,
    next_index: usize,
    skip_revision: i64,
    skip: usize,
}

impl Numbering {
    fn new(resume: Resume) -> Numbering {
        Numbering {
            revision: 0,
            next_index: 0,
            skip_revision: resume.start,
            skip: resume.skip,
        }
    }

    /// The event id of the next change at `revision`, or `None` if it was delivered before.
    fn next(&mut self, revision: i64) -> Option<String> {
        if revision != self.revision {
            self.revision = revision;
            self.next_index = 0;
        }
        let index = self.next_index;
        self.next_index += 1;
        if revision == self.skip_revision && index < self.skip {
            return None;
        }
        Some(format!("{revision}.{index}"))
    }
}

/// Wraps an SSE stream: keep-alive comments, no proxy buffering.
pub fn sse_response<S>(state: &AppState, stream: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(state.config.sse_keep_alive())
                .text("keep-alive"),
        )
        .into_response();
    // NGINX: do not buffer this response even if proxy_buffering is on.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Turns a stream of `items` into SSE events with `to_event` (which says whether the event
/// ends the stream), ending with `event: shutdown` when the gateway drains. Counts as an
/// open SSE stream in the metrics while it lives.
pub fn drained_events<S, T, F>(
    state: &AppState,
    items: S,
    to_event: F,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static
where
    S: Stream<Item = T> + Send + Unpin + 'static,
    T: Send + 'static,
    F: FnMut(T) -> (SseEvent, bool) + Send + 'static,
{
    let guard = StreamGuard::open("sse");
    futures::stream::unfold(
        (items, state.clone(), false, guard, to_event),
        |(mut items, state, done, guard, mut to_event)| async move {
            if done {
                return None;
            }
            let next = tokio::select! {
                biased;
                () = state.drain.closed() => None,
                next = items.next() => Some(next?),
            };
            let (event, done) = match next {
                None => (shutdown_event(), true),
                Some(item) => to_event(item),
            };
            Some((Ok(event), (items, state, done, guard, to_event)))
        },
    )
}

/// The `event: error` that ends a stream.
pub fn error_event(error: ApiError) -> SseEvent {
    SseEvent::default()
        .event("error")
        .json_data(error.body())
        .unwrap_or_else(|_| SseEvent::default().event("error").data("{}"))
}

/// The `event: shutdown` that ends a stream when the gateway drains.
pub fn shutdown_event() -> SseEvent {
    SseEvent::default()
        .event("shutdown")
        .data(r#"{"reason":"the gateway is shutting down: reconnect with Last-Event-ID"}"#)
}

struct Session {
    state: AppState,
    events: WatchStream,
    numbering: Numbering,
    encoding: Encoding,
    first: Option<SseEvent>,
    done: bool,
    _guard: StreamGuard,
}

fn change_event(
    event: &conclave_client::Event,
    id: String,
    encoding: Encoding,
) -> Result<SseEvent, ApiError> {
    let kind = match event.kind {
        EventKind::Put => "put",
        EventKind::Delete => "delete",
    };
    let data = WatchEvent {
        kind,
        kv: KvDto::new(&event.kv, encoding)?,
        prev_kv: event
            .prev_kv
            .as_ref()
            .map(|kv| KvDto::new(kv, encoding))
            .transpose()?,
    };
    SseEvent::default()
        .event(kind)
        .id(id)
        .json_data(&data)
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn step(mut session: Session) -> Option<(Result<SseEvent, Infallible>, Session)> {
    if session.done {
        return None;
    }
    if let Some(first) = session.first.take() {
        return Some((Ok(first), session));
    }
    loop {
        let next = tokio::select! {
            biased;
            () = session.state.drain.closed() => {
                session.done = true;
                return Some((Ok(shutdown_event()), session));
            }
            next = session.events.next() => next,
        };
        let event = match next {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                session.done = true;
                let compact = match &error {
                    Error::Compacted { compact_revision } => *compact_revision,
                    _ => None,
                };
                let mut api = ApiError::from(error);
                if let Some(revision) = compact {
                    api.message = format!("{} — restart from revision {revision} or later", api.message);
                }
                return Some((Ok(error_event(api)), session));
            }
            None => {
                session.done = true;
                return Some((
                    Ok(error_event(ApiError::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the watch ended: reconnect with Last-Event-ID",
                    ))),
                    session,
                ));
            }
        };
        let Some(id) = session.numbering.next(event.revision()) else {
            continue;
        };
        return match change_event(&event, id, session.encoding) {
            Ok(sse) => Some((Ok(sse), session)),
            Err(error) => {
                session.done = true;
                Some((Ok(error_event(error)), session))
            }
        };
    }
}

/// `GET /v1/watch?key=|prefix=&start_revision=`: a Server-Sent Events stream of changes;
/// see the module docs for ids and resuming with `Last-Event-ID`.
#[utoipa::path(get, path = "/v1/watch", tag = "watch",
    params(WatchQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this event (`R` or `R.n`)")),
    responses(
        (status = 200, description = "`text/event-stream`: `created`, then `put` / `delete` events (data: WatchEvent); `error` or `shutdown` end it", body = WatchEvent, content_type = "text/event-stream"),
        (status = 400, description = "`invalid_argument` or `future_revision`", body = ErrorBody),
        (status = 410, description = "`compacted`", body = ErrorBody),
        (status = 503, description = "`draining` or `unavailable`", body = ErrorBody)))]
pub async fn watch(
    Caller(state): Caller,
    Q(query): Q<WatchQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.drain.is_draining() {
        return Err(ApiError::draining());
    }
    let encoding = query.encoding.unwrap_or_default();
    let mut watch = match (&query.key, &query.prefix) {
        (Some(key), None) => Watch::key(encoding.decode("key", key)?),
        (None, Some(prefix)) if prefix.is_empty() => Watch::range(vec![0], vec![0]),
        (None, Some(prefix)) => Watch::prefix(encoding.decode("prefix", prefix)?),
        _ => return Err(ApiError::invalid("give exactly one of key= or prefix=")),
    };
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID is not ASCII: it is not an id of this API"))?
                .to_string(),
        ),
    }
    .filter(|v| !v.trim().is_empty());
    let resume = match &last_event_id {
        Some(id) => parse_event_id(id)
            .ok_or_else(|| ApiError::invalid(format!("Last-Event-ID {id:?} is not an id of this API")))?,
        None => Resume {
            start: query.start_revision.unwrap_or(0).max(0),
            skip: 0,
        },
    };
    if resume.start > 0 {
        watch = watch.start_revision(resume.start);
    }
    if query.prev_kv.unwrap_or(false) {
        watch = watch.prev_kv();
    }
    let events = state.client.watch(watch).await?;
    let created = events.created_revision();
    let mut first = SseEvent::default()
        .event("created")
        .data(format!(r#"{{"revision":{created}}}"#));
    if last_event_id.is_none() {
        let delivered_up_to = if resume.start > 0 {
            resume.start - 1
        } else {
            created
        };
        first = first.id(delivered_up_to.to_string());
    }
    let session = Session {
        state: state.clone(),
        events,
        numbering: Numbering::new(resume),
        encoding,
        first: Some(first),
        done: false,
        _guard: StreamGuard::open("sse"),
    };
    Ok(sse_response(&state, futures::stream::unfold(session, step)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_resume_exactly() {
        assert_eq!(parse_event_id("41"), Some(Resume { start: 42, skip: 0 }));
        assert_eq!(parse_event_id("42.1"), Some(Resume { start: 42, skip: 2 }));
        assert_eq!(
            parse_event_id("9223372036854775807"),
            None,
            "no wrap-around to 'from now'"
        );
        assert_eq!(parse_event_id(&format!("5.{}", usize::MAX)), None);
        assert_eq!(parse_event_id("x"), None);
        let mut numbering = Numbering::new(Resume { start: 42, skip: 2 });
        // Revision 42 is replayed in full; its first two changes were delivered.
        assert_eq!(numbering.next(42), None);
        assert_eq!(numbering.next(42), None);
        assert_eq!(numbering.next(42).as_deref(), Some("42.2"));
        assert_eq!(numbering.next(43).as_deref(), Some("43.0"));
    }
}
