//! `watch`: prints every change in etcdctl's format until interrupted, over the SDK's
//! resumable [`WatchStream`](conclave_client::WatchStream) (a member failing or losing
//! its leader does not end it, and no event is printed twice or skipped).

use std::io::Write;

use conclave_client::watch::Watch;
use conclave_client::{Event, EventKind};
use futures::StreamExt;
use serde_json::{json, Value};

use super::kv::{key_span, KeySpan};
use super::{flush, Context, Interrupt};
use crate::args::{Format, WatchArgs};
use crate::error::CliError;
use crate::output;

/// `watch`.
pub async fn run(ctx: &Context, args: &WatchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut interrupt = Interrupt::install();
    let mut watch = match key_span(&args.key, args.end.as_deref(), args.prefix, args.from_key) {
        KeySpan::Key(key) => Watch::key(key),
        KeySpan::Range(start, end) => Watch::range(start, end),
    };
    if args.rev > 0 {
        watch = watch.start_revision(args.rev);
    }
    if args.prev_kv {
        watch = watch.prev_kv();
    }
    let mut events = tokio::select! {
        created = ctx.client.watch(watch) => created.map_err(|e| ctx.fail(e))?,
        _ = interrupt.wait() => return Ok(()),
    };
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = interrupt.wait() => return Ok(()),
        };
        match event {
            Some(Ok(event)) => {
                match ctx.format {
                    Format::Json => output::json_line(out, &event_json(&event))?,
                    _ => simple_event(out, &event)?,
                }
                flush(out)?;
            }
            Some(Err(error)) => return Err(ctx.fail(error)),
            None => return Err(CliError::Failed("the watch ended".into())),
        }
    }
}

/// etcdctl's simple output of an event: `PUT` or `DELETE`, the previous key-value if
/// asked for, then the key and value.
pub fn simple_event(out: &mut dyn Write, event: &Event) -> Result<(), CliError> {
    output::line(out, kind_name(event.kind))?;
    if let Some(prev) = &event.prev_kv {
        output::simple_kv(out, prev, false)?;
    }
    output::simple_kv(out, &event.kv, false)
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Put => "PUT",
        EventKind::Delete => "DELETE",
    }
}

/// One event as a JSON line.
pub fn event_json(event: &Event) -> Value {
    let mut value = json!({
        "type": kind_name(event.kind),
        "kv": output::kv_json(&event.kv),
    });
    if let (Some(prev), Some(map)) = (&event.prev_kv, value.as_object_mut()) {
        map.insert("prev_kv".into(), output::kv_json(prev));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_client::KeyValue;

    #[test]
    fn events_print_as_etcdctl_prints_them() {
        let kv = |value: &[u8], rev| KeyValue {
            key: b"w1".to_vec(),
            value: value.to_vec(),
            create_revision: 2,
            mod_revision: rev,
            version: 1,
            lease: None,
        };
        let mut out = Vec::new();
        simple_event(
            &mut out,
            &Event {
                kind: EventKind::Put,
                kv: kv(b"b", 3),
                prev_kv: Some(kv(b"a", 2)),
            },
        )
        .unwrap();
        simple_event(
            &mut out,
            &Event {
                kind: EventKind::Delete,
                kv: kv(b"", 4),
                prev_kv: None,
            },
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PUT\nw1\na\nw1\nb\nDELETE\nw1\n\n"
        );
    }
}
