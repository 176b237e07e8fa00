//! `GET /v1/groups/{name}/watch`: a group's map as Server-Sent Events, resumable by
//! generation.
//!
//! Events: `snapshot` (the whole map, first on a stream from generation 0), `change`
//! (`{generation, partitions}`: one generation, the partitions it changed, whole) and
//! `members` (`{updated, left}`: registrations made, changed or ended). Every event's
//! `id:` is the generation the map is at after it, so a client that reconnects with
//! `Last-Event-ID` (or `?after=`) gets exactly the generations after it — no gap, no
//! duplicate — and no snapshot. A `members` event names whole records, so one that came
//! after that generation may come again; applying it twice changes nothing.
//!
//! Ends: `error` when the group is deleted, or when the resume point is older than the
//! history the cluster keeps (`code: generation_gone`, sent with `id: 0` so an
//! `EventSource` reconnects from a snapshot by itself); `shutdown` when the gateway drains
//! (reconnect with `Last-Event-ID`). Keep-alive comments every `--sse-keep-alive`.

use std::convert::Infallible;

use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use conclave_client::group::{MapEvent, MapEvents};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{failed, group_of, MapDto, MemberDto, PartitionDto};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{P, Q};
use crate::metrics::StreamGuard;
use crate::v1::watch::{error_event, shutdown_event, sse_response};
use crate::AppState;

/// Query of `GET /v1/groups/{name}/watch`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MapWatchQuery {
    /// Resume after this generation (no snapshot); default 0: a snapshot first.
    /// `Last-Event-ID` wins over it.
    pub after: Option<u64>,
}

/// Data of a `change` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeEvent {
    /// The generation (exactly one more than the previous event's id).
    pub generation: u64,
    /// The store revision it was written at.
    pub revision: i64,
    /// The partitions it changed, whole.
    pub partitions: Vec<PartitionDto>,
}

/// Data of a `members` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersEvent {
    /// Registered, or their registration changed (whole records).
    pub updated: Vec<MemberDto>,
    /// Member ids whose registration ended.
    pub left: Vec<String>,
}

/// What to do with the next event of the SDK's stream: the rule behind the ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send it as `event` with `id`.
    Send {
        /// The SSE event name.
        event: &'static str,
        /// The generation the map is at after it.
        id: u64,
    },
    /// The resume point fell out of the kept history (the SDK started over from a
    /// snapshot): end with `generation_gone`, the client restarts from 0.
    Gone,
    /// A generation that does not follow the last one: end rather than send a gap.
    Gap {
        /// The last generation sent.
        have: u64,
        /// The one that came.
        got: u64,
    },
}

/// The generations a stream has delivered.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// The generation the client's map is at.
    at: u64,
    /// Whether a snapshot may come (only first, on a stream from 0).
    snapshot_due: bool,
}

impl Sequence {
    /// A stream resuming after generation `after` (0: it starts with a snapshot).
    pub fn new(after: u64) -> Sequence {
        Sequence {
            at: after,
            snapshot_due: after == 0,
        }
    }

    /// Decides about `event`; a sent generation moves the stream on.
    pub fn admit(&mut self, event: &MapEvent) -> Step {
        match event {
            MapEvent::Snapshot(map) if self.snapshot_due => {
                self.snapshot_due = false;
                self.at = map.generation;
                Step::Send {
                    event: "snapshot",
                    id: self.at,
                }
            }
            // A snapshot anywhere else means the SDK could not resume at `at`.
            MapEvent::Snapshot(_) => Step::Gone,
            MapEvent::Change { .. } | MapEvent::Members { .. } if self.snapshot_due => Step::Gap {
                have: self.at,
                got: event.generation(),
            },
            MapEvent::Change { generation, .. } if *generation == self.at + 1 => {
                self.at = *generation;
                Step::Send {
                    event: "change",
                    id: self.at,
                }
            }
            MapEvent::Change { generation, .. } => Step::Gap {
                have: self.at,
                got: *generation,
            },
            MapEvent::Members { .. } => Step::Send {
                event: "members",
                id: self.at,
            },
        }
    }
}

/// `event` as the SSE event `name` with `id`, its data in this API's shapes.
fn sse_of(event: &MapEvent, name: &'static str, id: u64) -> Result<SseEvent, axum::Error> {
    let sse = SseEvent::default().event(name).id(id.to_string());
    match event {
        MapEvent::Snapshot(map) => sse.json_data(MapDto::from(map)),
        MapEvent::Change {
            generation,
            revision,
            partitions,
        } => sse.json_data(ChangeEvent {
            generation: *generation,
            revision: *revision,
            partitions: partitions.iter().map(PartitionDto::from).collect(),
        }),
        MapEvent::Members { updated, left, .. } => sse.json_data(MembersEvent {
            updated: updated.iter().map(MemberDto::from).collect(),
            left: left.iter().map(|m| m.0.clone()).collect(),
        }),
    }
}

struct Session {
    state: AppState,
    group: String,
    events: MapEvents,
    sequence: Sequence,
    done: bool,
    _guard: StreamGuard,
}

async fn step(mut session: Session) -> Option<(Result<SseEvent, Infallible>, Session)> {
    if session.done {
        return None;
    }
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
            return Some((Ok(error_event(failed(error))), session));
        }
        None => {
            session.done = true;
            let error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the map watch ended: reconnect with Last-Event-ID",
            );
            return Some((Ok(error_event(error)), session));
        }
    };
    let sse = match session.sequence.admit(&event) {
        Step::Send { event: name, id } => match sse_of(&event, name, id) {
            Ok(sse) => sse,
            Err(e) => {
                session.done = true;
                error_event(ApiError::internal(e.to_string()))
            }
        },
        Step::Gone => {
            session.done = true;
            let error = ApiError::new(
                StatusCode::GONE,
                "generation_gone",
                format!(
                    "the map of {:?} can no longer be resumed there (older than the kept history, or the group was re-created): start again from generation 0",
                    session.group
                ),
            );
            // `id: 0` makes an EventSource's automatic reconnect ask for a snapshot.
            error_event(error).id("0")
        }
        Step::Gap { have, got } => {
            session.done = true;
            error_event(ApiError::internal(format!(
                "the map went from generation {have} to {got}: reconnect with Last-Event-ID {have}"
            )))
        }
    };
    Some((Ok(sse), session))
}

/// Parses a `Last-Event-ID` of this stream: a generation.
pub fn parse_generation(id: &str) -> Option<u64> {
    id.trim().parse().ok()
}

/// `GET /v1/groups/{name}/watch`: the map as Server-Sent Events; see the module docs.
#[utoipa::path(get, operation_id = "group_watch", path = "/v1/groups/{name}/watch", tag = "groups",
    params(("name" = String, Path, description = "group name"), MapWatchQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "resume after this generation")),
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot` (data: MapDto), `change` (data: ChangeEvent), `members` (data: MembersEvent), each with `id: <generation>`; `error` (data: ErrorBody) or `shutdown` end it", body = ChangeEvent, content_type = "text/event-stream"),
        (status = 400, description = "`invalid_argument`: a Last-Event-ID that is not a generation", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`draining` or `unavailable`", body = ErrorBody)))]
pub async fn watch(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<MapWatchQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.drain.is_draining() {
        return Err(ApiError::draining());
    }
    let group = group_of(&state, &name)?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid("Last-Event-ID is not ASCII: it is not a generation"))
        })
        .transpose()?
        .filter(|v| !v.trim().is_empty());
    let after = match last_event_id {
        Some(id) => parse_generation(id)
            .ok_or_else(|| ApiError::invalid(format!("Last-Event-ID {id:?} is not a generation")))?,
        None => query.after.unwrap_or(0),
    };
    // A missing group is a 404 answer rather than a stream that ends at once.
    group.get().await.map_err(failed)?;
    let session = Session {
        state: state.clone(),
        group: name,
        events: group.watch(after),
        sequence: Sequence::new(after),
        done: false,
        _guard: StreamGuard::open("sse"),
    };
    Ok(sse_response(&state, futures::stream::unfold(session, step)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use conclave_client::group::{GroupMap, MemberId};

    use super::*;

    fn snapshot(generation: u64) -> MapEvent {
        MapEvent::Snapshot(GroupMap {
            group: "g".into(),
            generation,
            revision: 1,
            partitions: Vec::new(),
            members: BTreeMap::new(),
        })
    }

    fn change(generation: u64) -> MapEvent {
        MapEvent::Change {
            generation,
            revision: 1,
            partitions: Vec::new(),
        }
    }

    fn members(generation: u64) -> MapEvent {
        MapEvent::Members {
            generation,
            updated: Vec::new(),
            left: vec![MemberId::from("m")],
        }
    }

    fn send(event: &'static str, id: u64) -> Step {
        Step::Send { event, id }
    }

    #[test]
    fn a_stream_from_zero_starts_with_the_snapshot_then_consecutive_generations() {
        let mut sequence = Sequence::new(0);
        assert_eq!(sequence.admit(&snapshot(7)), send("snapshot", 7));
        assert_eq!(sequence.admit(&members(7)), send("members", 7));
        assert_eq!(sequence.admit(&change(8)), send("change", 8));
        assert_eq!(sequence.admit(&change(9)), send("change", 9));
        assert_eq!(sequence.admit(&change(11)), Step::Gap { have: 9, got: 11 });
    }

    #[test]
    fn a_resumed_stream_sends_no_snapshot_and_a_late_snapshot_means_restart() {
        let mut sequence = Sequence::new(5);
        assert_eq!(sequence.admit(&members(5)), send("members", 5));
        assert_eq!(sequence.admit(&change(6)), send("change", 6));
        assert_eq!(
            sequence.admit(&change(6)),
            Step::Gap { have: 6, got: 6 },
            "no duplicate"
        );
        // The SDK starts over from a snapshot when the resume point is out of history.
        assert_eq!(Sequence::new(5).admit(&snapshot(2000)), Step::Gone);
        let mut from_zero = Sequence::new(0);
        from_zero.admit(&snapshot(3));
        assert_eq!(from_zero.admit(&snapshot(3)), Step::Gone, "only one snapshot");
    }

    #[test]
    fn nothing_before_the_snapshot_of_a_stream_from_zero() {
        assert_eq!(Sequence::new(0).admit(&change(1)), Step::Gap { have: 0, got: 1 });
    }

    #[test]
    fn last_event_ids_are_generations() {
        assert_eq!(parse_generation(" 42 "), Some(42));
        assert_eq!(parse_generation("42.1"), None);
        assert_eq!(parse_generation("-1"), None);
    }
}
