//! Leader election with a fencing epoch: campaign, write only while leader (the store
//! refuses the write otherwise), then step down.
//!
//! `cargo run -p conclave-client --example election`

mod common;

use std::time::Duration;

use conclave_client::{Client, Op};

#[tokio::main]
async fn main() -> conclave_client::Result<()> {
    let client = Client::connect(common::endpoints()).await?;
    let election = client.election("/example/election");
    let lease = client.grant_lease(Duration::from_secs(5)).await?;

    let leadership = election.campaign(&lease, "example-process").await?;
    println!("elected with epoch {}", leadership.epoch());

    // A fenced write: applies only while this leadership holds.
    let written = client
        .txn()
        .when([leadership.guard()])
        .then([Op::put(
            "/example/leader-owned",
            format!("written at epoch {}", leadership.epoch()),
        )])
        .await?;
    println!("fenced write applied: {}", written.succeeded);

    if let Some(leader) = election.leader().await? {
        println!("current leader key {} (epoch {})", leader.key, leader.epoch);
    }

    // Hand over, and stay out of the race for a while.
    leadership.step_down(Duration::from_secs(1)).await?;
    lease.revoke().await?;
    println!("stepped down");
    Ok(())
}
