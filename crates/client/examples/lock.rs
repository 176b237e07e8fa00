//! A distributed lock with a fencing epoch.
//!
//! `cargo run -p conclave-client --example lock`

mod common;

use conclave_client::{Client, Op};

#[tokio::main]
async fn main() -> conclave_client::Result<()> {
    let client = Client::connect(common::endpoints()).await?;
    let lock = client.lock("/example/locks/report").await?;
    println!("locked {} with epoch {}", lock.key(), lock.epoch());

    let written = client
        .txn()
        .when([lock.guard()])
        .then([Op::put("/example/report", "generated under the lock")])
        .await?;
    println!("guarded write applied: {}", written.succeeded);

    lock.unlock().await?;
    println!("unlocked");
    Ok(())
}
