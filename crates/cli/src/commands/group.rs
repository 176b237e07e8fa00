//! `group create|update|delete|list|show|map|route|drain|leave|history|watch`: partition
//! groups through the SDK's [`Group`] (conclave.partition.v1.Groups).

use std::io::Write;
use std::time::Duration;

use conclave_client::group::{Group, GroupInfo, GroupSettings, MemberId};
use futures::StreamExt;
use serde_json::json;

use super::{flush, Context, Interrupt};
use crate::args::{Format, GroupCommand, GroupSettingsArgs};
use crate::error::{CliError, GroupTarget};
use crate::output::{self, group as render};

/// `group ...`.
pub async fn run(ctx: &Context, command: GroupCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        GroupCommand::Create {
            name,
            partitions,
            settings,
        } => {
            let settings = GroupSettings {
                partitions,
                ..to_settings(&settings)?
            };
            let group = ctx.client.group(&name);
            let created = group
                .create(settings)
                .await
                .map_err(|e| fail(ctx, &name, None, e))?;
            print_group(ctx, out, &created, "created")
        }
        GroupCommand::Update { name, settings } => {
            let settings = to_settings(&settings)?;
            if settings == GroupSettings::default() {
                return Err(CliError::InvalidInput(format!(
                    "nothing to change: give the settings to change (e.g. `group update {name} --replicas 2`; see --help)"
                )));
            }
            let group = ctx.client.group(&name);
            let updated = group
                .update(settings)
                .await
                .map_err(|e| fail(ctx, &name, None, e))?;
            print_group(ctx, out, &updated, "updated")
        }
        GroupCommand::Delete { name } => delete(ctx, &name, out).await,
        GroupCommand::List => list(ctx, out).await,
        GroupCommand::Show { name } => show(ctx, &name, out).await,
        GroupCommand::Map { name } => map(ctx, &name, out).await,
        GroupCommand::Route { name, key } => route(ctx, &name, &key, out).await,
        GroupCommand::Drain { name, member, resume } => drain(ctx, &name, &member, resume, out).await,
        GroupCommand::Leave {
            name,
            member,
            timeout,
        } => leave(ctx, &name, &member, timeout, out).await,
        GroupCommand::History { name, limit } => history(ctx, &name, limit, out).await,
        GroupCommand::Watch { name, after } => watch(ctx, &name, after, out).await,
    }
}

/// An SDK error of a command about group `group` (and `member`), in the CLI's terms.
fn fail(ctx: &Context, group: &str, member: Option<&str>, error: conclave_client::Error) -> CliError {
    CliError::from_group(error, &ctx.endpoints, &GroupTarget { group, member })
}

/// The flags as the SDK's settings. A session TTL is a lease TTL, whole seconds: refused
/// here rather than rounded silently.
fn to_settings(args: &GroupSettingsArgs) -> Result<GroupSettings, CliError> {
    if let Some(ttl) = args.session_ttl {
        if ttl.subsec_nanos() != 0 || ttl.is_zero() {
            return Err(CliError::InvalidInput(format!(
                "--session-ttl {ttl:?}: a session TTL is a lease's, a whole number of seconds, at least 1s (e.g. 10s)"
            )));
        }
    }
    Ok(GroupSettings {
        partitions: None,
        replicas: args.replicas,
        epsilon: args.epsilon,
        rebalance_delay: args.rebalance_delay,
        session_ttl: args.session_ttl,
        handoff_timeout: args.handoff_timeout,
        max_moves_per_member: args.max_moves_per_member,
        max_moves_per_group: args.max_moves_per_group,
        zone_label: args.zone_label.clone(),
    })
}

fn print_lines(out: &mut dyn Write, lines: &[String]) -> Result<(), CliError> {
    for line in lines {
        output::line(out, line)?;
    }
    Ok(())
}

/// A created or updated group: a summary line (simple), its settings (table), or JSON.
fn print_group(ctx: &Context, out: &mut dyn Write, group: &GroupInfo, done: &str) -> Result<(), CliError> {
    match ctx.format {
        Format::Json => output::json_line(out, &json!({ "group": render::group_json(group) })),
        Format::Table => output::write(out, render::groups_table(std::slice::from_ref(group)).as_bytes()),
        Format::Simple => output::line(
            out,
            &format!(
                "group {} {done} (partitions {}, replicas {})",
                group.name, group.partitions, group.replicas
            ),
        ),
    }
}

async fn delete(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let deleted = ctx
        .client
        .group(name)
        .delete()
        .await
        .map_err(|e| fail(ctx, name, None, e))?;
    if !deleted {
        // The group read before the delete was replaced by a group of the same name.
        return Err(CliError::Failed(format!(
            "group {name} was deleted and created again meanwhile; nothing was deleted: run the command again to delete the new one"
        )));
    }
    match ctx.format {
        Format::Json => output::json_line(out, &json!({ "group": name, "deleted": true })),
        _ => output::line(out, &format!("group {name} deleted")),
    }
}

async fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), CliError> {
    let groups = ctx.client.groups().await.map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => {
            let groups: Vec<_> = groups.iter().map(render::group_json).collect();
            output::json_line(out, &json!({ "groups": groups }))
        }
        Format::Table => output::write(out, render::groups_table(&groups).as_bytes()),
        Format::Simple => {
            for g in &groups {
                output::line(
                    out,
                    &format!("{}, partitions {}, replicas {}", g.name, g.partitions, g.replicas),
                )?;
            }
            Ok(())
        }
    }
}

async fn show(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let group = ctx.client.group(name);
    let info = group.get().await.map_err(|e| fail(ctx, name, None, e))?;
    let map = group.map().await.map_err(|e| fail(ctx, name, None, e))?;
    let held = render::holdings(&map);
    let holding = |id: &MemberId| held.get(id).copied().unwrap_or_default();
    match ctx.format {
        Format::Json => {
            let members: Vec<_> = map
                .members
                .values()
                .map(|m| render::member_json(m, Some(holding(&m.id))))
                .collect();
            output::json_line(
                out,
                &json!({
                    "group": render::group_json(&info),
                    "generation": map.generation,
                    "revision": map.revision,
                    "members": members,
                }),
            )
        }
        Format::Table => {
            output::write(out, render::groups_table(std::slice::from_ref(&info)).as_bytes())?;
            output::line(out, &render::map_heading(&map))?;
            output::write(out, render::members_table(&map).as_bytes())
        }
        Format::Simple => {
            print_lines(out, &render::group_lines(&info))?;
            output::line(out, &format!("generation: {}", map.generation))?;
            output::line(out, &format!("members: {}", map.members.len()))?;
            for member in map.members.values() {
                output::line(out, &render::member_line(member, holding(&member.id)))?;
            }
            Ok(())
        }
    }
}

async fn map(ctx: &Context, name: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let map = ctx
        .client
        .group(name)
        .map()
        .await
        .map_err(|e| fail(ctx, name, None, e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &render::map_json(&map)),
        Format::Table => {
            output::line(out, &render::map_heading(&map))?;
            output::write(out, render::map_table(&map).as_bytes())
        }
        Format::Simple => {
            output::line(out, &render::map_heading(&map))?;
            for partition in &map.partitions {
                output::line(out, &render::partition_line(partition))?;
            }
            Ok(())
        }
    }
}

async fn route(ctx: &Context, name: &str, key: &str, out: &mut dyn Write) -> Result<(), CliError> {
    let route = ctx
        .client
        .group(name)
        .route(key.as_bytes().to_vec())
        .await
        .map_err(|e| fail(ctx, name, None, e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &render::route_json(name, &route)),
        Format::Table => output::write(out, render::route_table(&route).as_bytes()),
        Format::Simple => print_lines(out, &render::route_lines(&route)),
    }
}

async fn drain(
    ctx: &Context,
    name: &str,
    member: &str,
    resume: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (replicas, leaderships) = ctx
        .client
        .group(name)
        .drain(member, resume)
        .await
        .map_err(|e| fail(ctx, name, Some(member), e))?;
    let state = if resume { "active" } else { "draining" };
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({
                "group": name,
                "member": member,
                "state": state,
                "replicas": replicas,
                "leaderships": leaderships,
            }),
        ),
        _ if resume => output::line(
            out,
            &format!("member {member} of group {name} takes partitions again (it holds {replicas} replicas, {leaderships} leaderships)"),
        ),
        _ => output::line(
            out,
            &format!("member {member} of group {name} is draining: it still holds {replicas} replicas, {leaderships} leaderships (`group show {name}` follows it)"),
        ),
    }
}

/// Graceful leave. A hand-over that outlasts `timeout` is reported with what the member
/// still holds, read after the fact (best effort: left out if that read fails too).
async fn leave(
    ctx: &Context,
    name: &str,
    member: &str,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let group = ctx.client.group(name);
    match group.leave_member(member, timeout).await {
        Ok(()) => {}
        Err(conclave_client::Error::Timeout(waited)) => {
            let holding = still_held(&group, member).await;
            return Err(CliError::leave_timeout(name, member, waited, holding));
        }
        Err(error) => return Err(fail(ctx, name, Some(member), error)),
    }
    match ctx.format {
        Format::Json => output::json_line(out, &json!({ "group": name, "member": member, "left": true })),
        _ => output::line(out, &format!("member {member} left group {name}")),
    }
}

/// What `member` holds in the group's map now, if the map can be read.
async fn still_held(group: &Group, member: &str) -> Option<(u32, u32)> {
    let map = group.map().await.ok()?;
    Some(
        render::holdings(&map)
            .get(&MemberId::from(member))
            .copied()
            .unwrap_or_default(),
    )
}

async fn history(ctx: &Context, name: &str, limit: u32, out: &mut dyn Write) -> Result<(), CliError> {
    if limit == 0 {
        return Err(CliError::InvalidInput("--limit must be at least 1".into()));
    }
    let entries = ctx
        .client
        .group(name)
        .history(limit)
        .await
        .map_err(|e| fail(ctx, name, None, e))?;
    match ctx.format {
        Format::Json => {
            let entries: Vec<_> = entries.iter().map(render::history_json).collect();
            output::json_line(out, &json!({ "group": name, "entries": entries }))
        }
        Format::Table => output::write(out, render::history_table(&entries).as_bytes()),
        Format::Simple => {
            for entry in &entries {
                output::line(out, &render::history_line(entry))?;
            }
            Ok(())
        }
    }
}

/// Prints every map event until Ctrl-C or SIGTERM (then exits 0, as `watch` does). The
/// SDK resumes a broken stream on another member after the last generation printed, so
/// nothing is printed twice or skipped; a group deleted meanwhile ends it (not found).
async fn watch(ctx: &Context, name: &str, after: u64, out: &mut dyn Write) -> Result<(), CliError> {
    let mut interrupt = Interrupt::install();
    let mut events = ctx.client.group(name).watch(after);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = interrupt.wait() => return Ok(()),
        };
        match event {
            Some(Ok(event)) => {
                match ctx.format {
                    Format::Json => output::json_line(out, &render::event_json(&event))?,
                    _ => print_lines(out, &render::event_lines(&event))?,
                }
                flush(out)?;
            }
            Some(Err(error)) => return Err(fail(ctx, name, None, error)),
            None => return Err(CliError::Failed("the map watch ended".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ttl_must_be_whole_seconds() {
        let args = |ttl: Duration| GroupSettingsArgs {
            session_ttl: Some(ttl),
            ..GroupSettingsArgs::default()
        };
        assert!(to_settings(&args(Duration::from_millis(1500))).is_err());
        assert!(to_settings(&args(Duration::ZERO)).is_err());
        let settings = to_settings(&args(Duration::from_secs(3))).unwrap();
        assert_eq!(settings.session_ttl, Some(Duration::from_secs(3)));
        assert_eq!(settings.partitions, None, "only create sets the partition count");
    }
}
