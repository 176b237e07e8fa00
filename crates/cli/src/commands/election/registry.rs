//! `elect ls`, `elect status`, `elect ping` and `elect stepdown`: the election's
//! candidate registry, and control requests answered by the candidates themselves.

use std::io::Write;
use std::time::{Duration, SystemTime};

use conclave_client::{CandidateChange, CandidateEntry};
use futures::StreamExt;
use serde_json::{json, Value};

use super::super::{flush, Context, Interrupt};
use crate::args::{ElectLsArgs, ElectPingArgs, ElectStatusArgs, ElectStepdownArgs, Format};
use crate::error::CliError;
use crate::output;

/// How long ago `unix_ms` was, as `1h2m`, `3m4s` or `5.6s`.
fn age(unix_ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let ms = now.saturating_sub(unix_ms);
    let s = ms / 1000;
    match s {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn epoch_text(entry: &CandidateEntry) -> String {
    entry.epoch.map_or_else(|| "-".into(), |e| e.to_string())
}

fn entry_json(entry: &CandidateEntry) -> Value {
    serde_json::to_value(entry).unwrap_or(Value::Null)
}

/// `elect ls`.
pub async fn ls(ctx: &Context, args: &ElectLsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let election = ctx.client.election(args.name.clone());
    if !args.watch {
        let entries = election.candidates().await.map_err(|e| ctx.fail(e))?;
        return print_entries(ctx.format, out, &entries);
    }
    let mut interrupt = Interrupt::install();
    let mut changes = tokio::select! {
        changes = election.candidate_changes() => changes.map_err(|e| ctx.fail(e))?,
        _ = interrupt.wait() => return Ok(()),
    };
    print_entries(ctx.format, out, &changes.initial)?;
    loop {
        let next = tokio::select! {
            next = changes.next() => next,
            _ = interrupt.wait() => return Ok(()),
        };
        match next {
            Some(Ok(change)) => print_change(ctx.format, out, &change)?,
            Some(Err(error)) => return Err(ctx.fail(error)),
            None => return Err(CliError::Failed("the registry watch ended".into())),
        }
    }
}

fn print_entries(format: Format, out: &mut dyn Write, entries: &[CandidateEntry]) -> Result<(), CliError> {
    match format {
        Format::Json => output::json_line(out, &Value::Array(entries.iter().map(entry_json).collect()))?,
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.clone(),
                        e.state.to_string(),
                        epoch_text(e),
                        age(e.since_unix_ms),
                        e.address.clone(),
                        e.version.clone(),
                    ]
                })
                .collect();
            output::write(
                out,
                output::table(&["ID", "STATE", "EPOCH", "FOR", "ADDRESS", "VERSION"], &rows).as_bytes(),
            )?;
        }
        Format::Simple => {
            for e in entries {
                output::line(
                    out,
                    &format!(
                        "{}, {}, {}, {}, {}",
                        e.id,
                        e.state,
                        epoch_text(e),
                        age(e.since_unix_ms),
                        e.address
                    ),
                )?;
            }
        }
    }
    flush(out)
}

fn print_change(format: Format, out: &mut dyn Write, change: &CandidateChange) -> Result<(), CliError> {
    match (format, change) {
        (Format::Json, CandidateChange::Put(entry)) => {
            output::json_line(out, &json!({ "type": "put", "candidate": entry_json(entry) }))?;
        }
        (Format::Json, CandidateChange::Gone(id)) => {
            output::json_line(out, &json!({ "type": "gone", "id": id }))?;
        }
        (_, CandidateChange::Put(e)) => {
            output::line(
                out,
                &format!("PUT {}, {}, {}, {}", e.id, e.state, epoch_text(e), e.address),
            )?;
        }
        (_, CandidateChange::Gone(id)) => output::line(out, &format!("GONE {id}"))?,
    }
    flush(out)
}

/// `elect status`.
pub async fn status(ctx: &Context, args: &ElectStatusArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let election = ctx.client.election(args.name.clone());
    let id = match &args.candidate {
        Some(id) => id.clone(),
        None => {
            election
                .leading_candidate(args.timeout)
                .await
                .map_err(|e| ctx.fail(e))?
                .id
        }
    };
    let asked = std::time::Instant::now();
    let report = election
        .status_of(&id, args.timeout)
        .await
        .map_err(|e| ctx.fail(e))?;
    let took = asked.elapsed();
    let e = &report.entry;
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({
                "candidate": entry_json(e),
                "leader_key": report.leader_key,
                "leader_epoch": report.leader_epoch,
                "connected": report.connected,
                "answered_in_ms": took.as_secs_f64() * 1000.0,
            }),
        )?,
        _ => {
            output::line(out, &format!("id: {}", e.id))?;
            output::line(out, &format!("state: {}", e.state))?;
            output::line(out, &format!("epoch: {}", epoch_text(e)))?;
            output::line(out, &format!("for: {}", age(e.since_unix_ms)))?;
            output::line(out, &format!("address: {}", e.address))?;
            let leader = match (&report.leader_key, report.leader_epoch) {
                (Some(key), Some(epoch)) => format!("{key} (epoch {epoch})"),
                _ => "none".into(),
            };
            output::line(out, &format!("leader: {leader}"))?;
            output::line(out, &format!("connected: {}", report.connected))?;
            output::line(out, &format!("version: {}", e.version))?;
            output::line(out, &format!("answered in: {:.1}ms", took.as_secs_f64() * 1000.0))?;
        }
    }
    flush(out)
}

/// `elect ping`.
pub async fn ping(ctx: &Context, args: &ElectPingArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let election = ctx.client.election(args.name.clone());
    for _ in 0..args.count.max(1) {
        let rtt = election
            .ping(&args.candidate, args.timeout)
            .await
            .map_err(|e| ctx.fail(e))?;
        let ms = rtt.as_secs_f64() * 1000.0;
        match ctx.format {
            Format::Json => output::json_line(out, &json!({ "id": args.candidate, "rtt_ms": ms }))?,
            _ => output::line(out, &format!("pong from {} in {ms:.1}ms", args.candidate))?,
        }
        flush(out)?;
    }
    Ok(())
}

/// `elect stepdown`.
pub async fn stepdown(ctx: &Context, args: &ElectStepdownArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let election = ctx.client.election(args.name.clone());
    let outcome = election
        .request_step_down(args.candidate.as_deref(), args.cooldown, args.timeout)
        .await
        .map_err(|e| ctx.fail(e))?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({
                "candidate": outcome.candidate,
                "epoch": outcome.epoch.0,
                "new_leader": outcome.new_leader.as_ref().map(|l| json!({
                    "key": l.key,
                    "epoch": l.epoch.0,
                    "candidate": outcome.new_leader_candidate,
                })),
                "elapsed_ms": ms(outcome.elapsed),
            }),
        )?,
        _ => {
            let next = match &outcome.new_leader {
                Some(l) => format!(
                    "new leader {} (epoch {}) after {:.1}ms",
                    outcome.new_leader_candidate.as_deref().unwrap_or(&l.key),
                    l.epoch,
                    ms(outcome.elapsed)
                ),
                None => "no new leader yet".into(),
            };
            output::line(
                out,
                &format!(
                    "{} stepped down from epoch {}; {next}",
                    outcome.candidate, outcome.epoch
                ),
            )?;
        }
    }
    flush(out)?;
    if outcome.new_leader.is_none() {
        return Err(CliError::Failed(format!(
            "{} stepped down, but no other leader was elected within {:?} (is another candidate running?)",
            outcome.candidate, args.timeout
        )));
    }
    Ok(())
}
