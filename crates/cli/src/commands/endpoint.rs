//! `endpoint health|status`: one answer per endpoint, each asked directly (no failover),
//! all at once.

use std::io::Write;

use conclave_client::{EndpointHealth, EndpointStatus};
use futures::future::join_all;
use serde_json::{json, Map, Value};

use super::Context;
use crate::args::{EndpointArgs, EndpointCommand, Format};
use crate::error::{is_connect_text, CliError};
use crate::output;

/// `endpoint ...`.
pub async fn run(ctx: &Context, command: EndpointCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        EndpointCommand::Health(args) => health(ctx, &args, out).await,
        EndpointCommand::Status(args) => status(ctx, &args, out).await,
    }
}

/// The endpoints a per-endpoint command asks: `--endpoints`, or with `cluster` every
/// member's client URLs from the member list.
pub async fn targets(ctx: &Context, cluster: bool) -> Result<Vec<String>, CliError> {
    if !cluster {
        return Ok(ctx.endpoints.clone());
    }
    // A serializable member list: `--cluster` must work when quorum is lost, which is
    // when health and status matter most.
    let members = super::member::member_list_raw(ctx, false).await?.members;
    let mut urls: Vec<String> = Vec::new();
    for url in members.into_iter().flat_map(|m| m.client_ur_ls) {
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Err(CliError::Failed(
            "no member has published its client URLs yet (members that never started have none)".into(),
        ));
    }
    Ok(urls)
}

async fn health(ctx: &Context, args: &EndpointArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let endpoints = targets(ctx, args.cluster).await?;
    let checks: Vec<EndpointHealth> = join_all(endpoints.iter().map(|e| ctx.client.endpoint_health(e))).await;
    match ctx.format {
        Format::Json => {
            let list: Vec<Value> = checks.iter().map(health_json).collect();
            output::json_line(out, &Value::Array(list))?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|c| {
                    vec![
                        c.endpoint.clone(),
                        c.healthy.to_string(),
                        format!("{:?}", c.took),
                        c.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::write(
                out,
                output::table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows).as_bytes(),
            )?;
        }
        Format::Simple => {
            for check in &checks {
                let text = match &check.error {
                    None => format!(
                        "{} is healthy: successfully committed proposal: took = {:?}",
                        check.endpoint, check.took
                    ),
                    Some(error) => format!(
                        "{} is unhealthy: failed to commit proposal: {error}",
                        check.endpoint
                    ),
                };
                output::line(out, &text)?;
            }
        }
    }
    let unhealthy: Vec<&str> = checks
        .iter()
        .filter(|c| !c.healthy)
        .map(|c| c.endpoint.as_str())
        .collect();
    let unreachable = checks
        .iter()
        .all(|c| c.error.as_deref().is_some_and(is_connect_text));
    if unhealthy.is_empty() {
        Ok(())
    } else if unreachable {
        Err(CliError::Unreachable {
            endpoints: unhealthy.join(","),
            detail: "connection refused or unreachable".into(),
        })
    } else {
        Err(CliError::Failed(format!(
            "unhealthy cluster: {} did not serve a linearizable read (is it running, and does the cluster have a leader?)",
            unhealthy.join(", ")
        )))
    }
}

fn health_json(check: &EndpointHealth) -> Value {
    let mut map = Map::new();
    map.insert("endpoint".into(), json!(check.endpoint));
    map.insert("health".into(), json!(check.healthy));
    map.insert("took".into(), json!(format!("{:?}", check.took)));
    if let Some(error) = &check.error {
        map.insert("error".into(), json!(error));
    }
    Value::Object(map)
}

async fn status(ctx: &Context, args: &EndpointArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let endpoints = targets(ctx, args.cluster).await?;
    let answers = join_all(endpoints.iter().map(|e| ctx.client.endpoint_status(e))).await;
    let mut statuses: Vec<EndpointStatus> = Vec::new();
    let mut failed = Vec::new();
    let mut unreachable = 0;
    for (endpoint, answer) in endpoints.iter().zip(answers) {
        match answer {
            Ok(status) => statuses.push(status),
            Err(error) => {
                let error = CliError::from_client(error, std::slice::from_ref(endpoint));
                if matches!(error, CliError::Unreachable { .. }) {
                    unreachable += 1;
                }
                eprintln!("Failed to get the status of endpoint {endpoint} ({error})");
                failed.push(endpoint.clone());
            }
        }
    }
    if statuses.is_empty() && unreachable == failed.len() {
        return Err(CliError::Unreachable {
            endpoints: failed.join(","),
            detail: "connection refused or unreachable".into(),
        });
    }
    match ctx.format {
        Format::Json => {
            let list: Vec<Value> = statuses.iter().map(status_json).collect();
            output::json_line(out, &Value::Array(list))?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = statuses.iter().map(status_row).collect();
            output::write(
                out,
                output::table(
                    &[
                        "ENDPOINT",
                        "ID",
                        "VERSION",
                        "DB SIZE",
                        "IS LEADER",
                        "IS LEARNER",
                        "RAFT TERM",
                        "RAFT INDEX",
                        "RAFT APPLIED INDEX",
                        "ERRORS",
                    ],
                    &rows,
                )
                .as_bytes(),
            )?;
        }
        Format::Simple => {
            for status in &statuses {
                output::line(out, &status_row(status).join(", "))?;
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!("no status from {}", failed.join(", "))))
    }
}

/// etcdctl's columns for an endpoint's status.
fn status_row(status: &EndpointStatus) -> Vec<String> {
    vec![
        status.endpoint.clone(),
        status.member_id.to_string(),
        status.version.clone(),
        output::human_bytes(status.db_size.max(0) as u64),
        status.is_leader().to_string(),
        status.is_learner.to_string(),
        status.raft_term.to_string(),
        status.raft_index.to_string(),
        status.raft_applied_index.to_string(),
        status.errors.join(", "),
    ]
}

/// An endpoint's status in etcdctl's JSON shape.
fn status_json(status: &EndpointStatus) -> Value {
    let mut inner = Map::new();
    inner.insert(
        "header".into(),
        json!({ "member_id": status.member_id.0, "revision": status.revision }),
    );
    inner.insert("version".into(), json!(status.version));
    inner.insert("dbSize".into(), json!(status.db_size));
    inner.insert("leader".into(), json!(status.leader.0));
    inner.insert("raftIndex".into(), json!(status.raft_index));
    inner.insert("raftTerm".into(), json!(status.raft_term));
    inner.insert("raftAppliedIndex".into(), json!(status.raft_applied_index));
    inner.insert("dbSizeInUse".into(), json!(status.db_size_in_use));
    if status.is_learner {
        inner.insert("isLearner".into(), json!(true));
    }
    if !status.errors.is_empty() {
        inner.insert("errors".into(), json!(status.errors));
    }
    json!({ "Endpoint": status.endpoint, "Status": Value::Object(inner) })
}
