//! `member list|add|remove|promote|update`, printed as etcdctl prints them.

use std::io::Write;

use conclave_client::{Idempotency, Member, MemberId};
use conclave_proto::etcdserverpb::cluster_client::ClusterClient;
use conclave_proto::etcdserverpb::{MemberListRequest, MemberListResponse};
use serde_json::{json, Map, Value};

use super::Context;
use crate::args::{parse_member_id, Format, MemberCommand};
use crate::error::CliError;
use crate::output;

/// `member ...`.
pub async fn run(ctx: &Context, command: MemberCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        MemberCommand::List => list(ctx, out).await,
        MemberCommand::Add {
            name,
            peer_urls,
            learner,
        } => add(ctx, &name, peer_urls, learner, out).await,
        MemberCommand::Remove { id } => {
            let id = member_id(&id)?;
            let members = ctx.client.member_remove(id).await.map_err(|e| ctx.fail(e))?;
            changed(ctx, id, "removed from", &members, out).await
        }
        MemberCommand::Promote { id } => {
            let id = member_id(&id)?;
            let members = ctx.client.member_promote(id).await.map_err(|e| ctx.fail(e))?;
            changed(ctx, id, "promoted in", &members, out).await
        }
        MemberCommand::Update { id, peer_urls } => {
            let id = member_id(&id)?;
            let members = ctx
                .client
                .member_update(id, peer_urls)
                .await
                .map_err(|e| ctx.fail(e))?;
            changed(ctx, id, "updated in", &members, out).await
        }
    }
}

fn member_id(text: &str) -> Result<MemberId, CliError> {
    parse_member_id(text)
        .map(MemberId)
        .map_err(CliError::InvalidInput)
}

/// The member list with its response header (for the cluster ID), through the SDK's
/// failover.
pub async fn member_list_raw(ctx: &Context, linearizable: bool) -> Result<MemberListResponse, CliError> {
    ctx.client
        .raw_call(Idempotency::Idempotent, |channel| async move {
            ClusterClient::new(channel)
                .member_list(MemberListRequest { linearizable })
                .await
                .map(tonic::Response::into_inner)
        })
        .await
        .map_err(|e| ctx.fail(e))
}

/// The cluster ID, from a member list's header.
async fn cluster_id(ctx: &Context) -> Result<u64, CliError> {
    Ok(member_list_raw(ctx, false)
        .await?
        .header
        .map_or(0, |h| h.cluster_id))
}

/// etcdctl's columns for a member.
fn member_row(member: &Member) -> Vec<String> {
    vec![
        member.id.to_string(),
        if member.name.is_empty() {
            "unstarted".into()
        } else {
            "started".into()
        },
        member.name.clone(),
        member.peer_urls.join(","),
        member.client_urls.join(","),
        member.is_learner.to_string(),
    ]
}

/// A member in etcdctl's JSON shape.
fn member_json(member: &Member) -> Value {
    let mut map = Map::new();
    map.insert("ID".into(), json!(member.id.0));
    map.insert("name".into(), json!(member.name));
    map.insert("peerURLs".into(), json!(member.peer_urls));
    map.insert("clientURLs".into(), json!(member.client_urls));
    if member.is_learner {
        map.insert("isLearner".into(), json!(true));
    }
    Value::Object(map)
}

async fn list(ctx: &Context, out: &mut dyn Write) -> Result<(), CliError> {
    let response = member_list_raw(ctx, true).await?;
    let header = response.header.unwrap_or_default();
    let members: Vec<Member> = response.members.into_iter().map(Member::from).collect();
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({
                "header": {
                    "cluster_id": header.cluster_id,
                    "member_id": header.member_id,
                    "raft_term": header.raft_term,
                },
                "members": members.iter().map(member_json).collect::<Vec<_>>(),
            }),
        ),
        Format::Table => {
            let rows: Vec<Vec<String>> = members.iter().map(member_row).collect();
            output::write(
                out,
                output::table(
                    &["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"],
                    &rows,
                )
                .as_bytes(),
            )
        }
        Format::Simple => {
            for member in &members {
                output::line(out, &member_row(member).join(", "))?;
            }
            Ok(())
        }
    }
}

async fn add(
    ctx: &Context,
    name: &str,
    peer_urls: Vec<String>,
    learner: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (member, members) = ctx
        .client
        .member_add(peer_urls.clone(), learner)
        .await
        .map_err(|e| ctx.fail(e))?;
    let cluster = cluster_id(ctx).await.unwrap_or(0);
    if ctx.format == Format::Json {
        return output::json_line(
            out,
            &json!({
                "header": { "cluster_id": cluster },
                "member": member_json(&member),
                "members": members.iter().map(member_json).collect::<Vec<_>>(),
            }),
        );
    }
    // etcdctl's hint: the settings the new member starts with (Conclave reads ETCD_* too).
    let mut initial_cluster = Vec::new();
    for m in &members {
        let member_name = if m.id == member.id { name } else { m.name.as_str() };
        for url in &m.peer_urls {
            initial_cluster.push(format!("{member_name}={url}"));
        }
    }
    output::line(out, &format!("Member {} added to cluster {cluster:x}", member.id))?;
    output::line(out, "")?;
    output::line(out, &format!("ETCD_NAME=\"{name}\""))?;
    output::line(
        out,
        &format!("ETCD_INITIAL_CLUSTER=\"{}\"", initial_cluster.join(",")),
    )?;
    output::line(
        out,
        &format!("ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"", peer_urls.join(",")),
    )?;
    output::line(out, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"")
}

/// The answer to remove, promote and update: `Member <id> <what> cluster <cluster id>`.
async fn changed(
    ctx: &Context,
    id: MemberId,
    what: &str,
    members: &[Member],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let cluster = cluster_id(ctx).await.unwrap_or(0);
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({
                "header": { "cluster_id": cluster },
                "members": members.iter().map(member_json).collect::<Vec<_>>(),
            }),
        ),
        _ => output::line(out, &format!("Member {id} {what} cluster {cluster:x}")),
    }
}
