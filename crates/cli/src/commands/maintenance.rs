//! `compaction`, `defrag` and `alarm list|disarm`.

use std::io::Write;

use conclave_client::cluster::Alarm;
use serde_json::json;

use super::endpoint::targets;
use super::Context;
use crate::args::{AlarmCommand, CompactionArgs, DefragArgs, Format};
use crate::error::CliError;
use crate::output;

/// `compaction`.
pub async fn compaction(ctx: &Context, args: &CompactionArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let revision = ctx
        .client
        .compact(args.rev, args.physical)
        .await
        .map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({ "header": output::header_json(revision), "compacted": args.rev }),
        ),
        _ => output::line(out, &format!("compacted revision {}", args.rev)),
    }
}

/// `defrag`: every endpoint (or member, with `--cluster`), one at a time as etcdctl does,
/// so that at most one member pauses for it at once.
pub async fn defrag(ctx: &Context, args: &DefragArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let endpoints = targets(ctx, args.cluster).await?;
    let mut failed = Vec::new();
    for endpoint in &endpoints {
        match ctx.client.defragment(endpoint).await {
            Ok(()) => match ctx.format {
                Format::Json => {
                    output::json_line(out, &json!({ "endpoint": endpoint, "defragmented": true }))?
                }
                _ => output::line(out, &format!("Finished defragmenting etcd member[{endpoint}]"))?,
            },
            Err(error) => {
                let error = CliError::from_client(error, std::slice::from_ref(endpoint));
                eprintln!("Failed to defragment etcd member[{endpoint}] ({error})");
                failed.push(endpoint.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "defragmentation failed on {}",
            failed.join(", ")
        )))
    }
}

/// `alarm list|disarm`.
pub async fn alarm(ctx: &Context, command: AlarmCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let alarms = match command {
        AlarmCommand::List => ctx.client.alarms().await,
        AlarmCommand::Disarm => ctx.client.disarm_alarms().await,
    }
    .map_err(|e| ctx.fail(e))?;
    print_alarms(ctx.format, out, &alarms)
}

fn print_alarms(format: Format, out: &mut dyn Write, alarms: &[Alarm]) -> Result<(), CliError> {
    match format {
        Format::Json => {
            let list: Vec<_> = alarms
                .iter()
                .map(|a| json!({ "memberID": a.member_id.0, "alarm": a.alarm }))
                .collect();
            output::json_line(out, &json!({ "alarms": list }))
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = alarms
                .iter()
                .map(|a| vec![a.member_id.to_string(), a.alarm.clone()])
                .collect();
            output::write(out, output::table(&["MEMBER ID", "ALARM"], &rows).as_bytes())
        }
        Format::Simple => {
            // etcdctl's line: the member ID in decimal, then the alarm.
            for alarm in alarms {
                output::line(
                    out,
                    &format!("memberID:{} alarm:{}", alarm.member_id.0, alarm.alarm),
                )?;
            }
            Ok(())
        }
    }
}
