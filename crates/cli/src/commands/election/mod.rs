//! `elect`: campaign and hold leadership until interrupted (then resign), or observe the
//! election's leader with `-l`; the registry and control subcommands (`registry`); the
//! leader-only daemon (`run`, with its `supervisor`).

use std::io::Write;

use conclave_client::{Election, LeaderInfo};
use futures::StreamExt;
use serde_json::json;

use super::{flush, Context, Interrupt};
use crate::args::{ElectArgs, ElectCommand, Format, SupervisorArgs};
use crate::error::CliError;
use crate::output;

mod registry;
mod run;
mod supervisor;

/// `elect-supervisor`: runs until `elect run`, its parent, goes away.
pub fn supervise(args: &SupervisorArgs) -> Result<(), CliError> {
    supervisor::serve(&supervisor::Plan {
        election: args.election.clone(),
        candidate: args.candidate.clone(),
        command: args.command.clone(),
        on_elected: args.on_elected.clone(),
        on_lost: args.on_lost.clone(),
        grace: std::time::Duration::from_millis(args.grace_ms),
    })
}

/// `elect`.
pub async fn run(ctx: &Context, args: &ElectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    match &args.action {
        Some(ElectCommand::Ls(args)) => return registry::ls(ctx, args, out).await,
        Some(ElectCommand::Status(args)) => return registry::status(ctx, args, out).await,
        Some(ElectCommand::Ping(args)) => return registry::ping(ctx, args, out).await,
        Some(ElectCommand::Stepdown(args)) => return registry::stepdown(ctx, args, out).await,
        Some(ElectCommand::Run(args)) => return run::run(ctx, args).await,
        None => {}
    }
    let Some(name) = &args.name else {
        return Err(CliError::InvalidInput("no election name given".into()));
    };
    let mut interrupt = Interrupt::install();
    let election = ctx.client.election(name.clone());
    if args.listen {
        return observe(ctx, &election, &mut interrupt, out).await;
    }
    let Some(proposal) = &args.proposal else {
        return Err(CliError::InvalidInput(
            "no proposal: campaign with `elect NAME PROPOSAL`, or observe with `elect -l NAME`".into(),
        ));
    };
    let lease = tokio::select! {
        lease = ctx.client.grant_lease(ctx.client.options().session_ttl) => lease.map_err(|e| ctx.fail(e))?,
        _ = interrupt.wait() => return Ok(()),
    };
    let campaign = tokio::select! {
        won = election.campaign(&lease, proposal.as_bytes().to_vec()) => won,
        _ = interrupt.wait() => {
            // Revoking the lease withdraws the candidacy: its key goes with it.
            let _ = lease.revoke().await;
            return Ok(());
        }
    };
    let leadership = match campaign {
        Ok(leadership) => leadership,
        Err(error) => {
            let _ = lease.revoke().await;
            return Err(ctx.fail(error));
        }
    };
    let announced = print_leader(
        ctx.format,
        out,
        &LeaderInfo {
            key: leadership.key().to_string(),
            value: proposal.as_bytes().to_vec(),
            epoch: leadership.epoch(),
            lease: Some(lease.id()),
        },
    );
    let held = match announced {
        Err(error) => Err(error),
        Ok(()) => tokio::select! {
            _ = interrupt.wait() => Ok(()),
            lost = leadership.lost() => Err(CliError::Failed(format!(
                "leadership lost ({lost}): another candidate may lead now"
            ))),
        },
    };
    let resigned = leadership.resign().await;
    let _ = lease.revoke().await;
    held?;
    resigned.map_err(|e| ctx.fail(e))
}

/// Prints every leader as it takes office (nothing while there is none).
async fn observe(
    ctx: &Context,
    election: &Election,
    interrupt: &mut Interrupt,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut leaders = tokio::select! {
        leaders = election.observe() => leaders.map_err(|e| ctx.fail(e))?,
        _ = interrupt.wait() => return Ok(()),
    };
    loop {
        let next = tokio::select! {
            next = leaders.next() => next,
            _ = interrupt.wait() => return Ok(()),
        };
        match next {
            Some(Ok(Some(leader))) => print_leader(ctx.format, out, &leader)?,
            Some(Ok(None)) => {}
            Some(Err(error)) => return Err(ctx.fail(error)),
            None => return Err(CliError::Failed("the observation ended".into())),
        }
    }
}

/// etcdctl's two lines (leader key, proclaimed value) and the fencing epoch.
fn print_leader(format: Format, out: &mut dyn Write, leader: &LeaderInfo) -> Result<(), CliError> {
    match format {
        Format::Json => output::json_line(
            out,
            &json!({
                "key": output::base64(leader.key.as_bytes()),
                "value": output::base64(&leader.value),
                "epoch": leader.epoch.0,
            }),
        )?,
        _ => {
            output::line(out, &leader.key)?;
            output::write(out, &leader.value)?;
            output::write(out, b"\n")?;
            output::line(out, &format!("epoch {}", leader.epoch))?;
        }
    }
    flush(out)
}
