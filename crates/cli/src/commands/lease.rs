//! `lease grant|revoke|timetolive|list|keep-alive`, with IDs in hex as etcdctl prints them.

use std::io::Write;
use std::time::Duration;

use conclave_client::{Error as ClientError, LeaseId};
use serde_json::json;

use super::{flush, Context, Interrupt};
use crate::args::{parse_lease_id, Format, LeaseCommand};
use crate::error::CliError;
use crate::output;

/// `lease ...`.
pub async fn run(ctx: &Context, command: LeaseCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        LeaseCommand::Grant { ttl } => grant(ctx, ttl, out).await,
        LeaseCommand::Revoke { id } => revoke(ctx, &id, out).await,
        LeaseCommand::TimeToLive { id, keys } => time_to_live(ctx, &id, keys, out).await,
        LeaseCommand::List => list(ctx, out).await,
        LeaseCommand::KeepAlive { id, once } => keep_alive(ctx, &id, once, out).await,
    }
}

fn lease_id(text: &str) -> Result<LeaseId, CliError> {
    parse_lease_id(text).map(LeaseId).map_err(CliError::InvalidInput)
}

/// A lease that is gone, said the way etcdctl does, with what to do.
fn not_found(ctx: &Context, id: LeaseId, error: ClientError) -> CliError {
    match error {
        ClientError::LeaseNotFound => CliError::Failed(format!(
            "lease {id} not found: it expired or was revoked (grant a new one with `lease grant`)"
        )),
        other => ctx.fail(other),
    }
}

async fn grant(ctx: &Context, ttl: i64, out: &mut dyn Write) -> Result<(), CliError> {
    if ttl <= 0 {
        return Err(CliError::InvalidInput(format!(
            "bad TTL {ttl}: a lease lives at least 1 second"
        )));
    }
    // The SDK keeps the lease alive only while this process runs; from then on it lives
    // out its TTL on the server unless kept alive (`lease keep-alive`) or revoked.
    let lease = ctx
        .client
        .grant_lease(Duration::from_secs(ttl as u64))
        .await
        .map_err(|e| ctx.fail(e))?;
    let granted = lease.ttl().as_secs();
    match ctx.format {
        Format::Json => output::json_line(out, &json!({ "ID": lease.id().0, "TTL": granted })),
        _ => output::line(out, &format!("lease {} granted with TTL({granted}s)", lease.id())),
    }
}

async fn revoke(ctx: &Context, id: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let id = lease_id(id)?;
    ctx.client
        .revoke_lease(id)
        .await
        .map_err(|e| not_found(ctx, id, e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &json!({ "revoked": id.0 })),
        _ => output::line(out, &format!("lease {id} revoked")),
    }
}

async fn time_to_live(ctx: &Context, id: &str, keys: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let id = lease_id(id)?;
    let info = ctx
        .client
        .lease_time_to_live(id, keys)
        .await
        .map_err(|e| not_found(ctx, id, e))?;
    if ctx.format == Format::Json {
        let keys: Vec<String> = info.keys.iter().map(|k| output::base64(k)).collect();
        return output::json_line(
            out,
            &json!({ "id": id.0, "ttl": info.ttl, "granted-ttl": info.granted_ttl, "keys": keys }),
        );
    }
    if info.ttl == -1 {
        return output::line(out, &format!("lease {id} already expired"));
    }
    let mut text = format!(
        "lease {id} granted with TTL({}s), remaining({}s)",
        info.granted_ttl, info.ttl
    );
    if keys {
        let names: Vec<String> = info
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        text.push_str(&format!(", attached keys([{}])", names.join(" ")));
    }
    output::line(out, &text)
}

async fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), CliError> {
    let leases = ctx.client.leases().await.map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => {
            let ids: Vec<_> = leases.iter().map(|l| json!({ "id": l.0 })).collect();
            output::json_line(out, &json!({ "leases": ids }))
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = leases.iter().map(|l| vec![l.to_string()]).collect();
            output::write(out, output::table(&["ID"], &rows).as_bytes())
        }
        Format::Simple => {
            output::line(out, &format!("found {} leases", leases.len()))?;
            for lease in &leases {
                output::line(out, &lease.to_string())?;
            }
            Ok(())
        }
    }
}

async fn keep_alive(ctx: &Context, id: &str, once: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let id = lease_id(id)?;
    let mut interrupt = Interrupt::install();
    loop {
        let renewed = tokio::select! {
            renewed = ctx.client.keep_alive_once(id) => renewed,
            _ = interrupt.wait() => return Ok(()),
        };
        let ttl = match renewed {
            Ok(ttl) => ttl,
            Err(ClientError::LeaseNotFound) if !once => {
                output::line(out, &format!("lease {id} expired or revoked."))?;
                flush(out)?;
                return Err(CliError::Failed(format!("lease {id} expired or revoked")));
            }
            Err(error) => return Err(not_found(ctx, id, error)),
        };
        match ctx.format {
            Format::Json => output::json_line(out, &json!({ "ID": id.0, "TTL": ttl }))?,
            _ => output::line(out, &format!("lease {id} keepalived with TTL({ttl})"))?,
        }
        flush(out)?;
        if once {
            return Ok(());
        }
        // Renew at a third of the TTL, as the SDK's own keep-alive does.
        let pause = Duration::from_millis((ttl.max(1) as u64) * 1000 / 3).max(Duration::from_millis(500));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = interrupt.wait() => return Ok(()),
        }
    }
}
