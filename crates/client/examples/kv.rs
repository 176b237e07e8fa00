//! Puts, gets, a prefix listing and a compare-and-swap transaction.
//!
//! Run against the local cluster (`make cluster`): `cargo run -p conclave-client --example kv`

mod common;

use conclave_client::kv::Get;
use conclave_client::{Client, Compare, Op};

#[tokio::main]
async fn main() -> conclave_client::Result<()> {
    let client = Client::connect(common::endpoints()).await?;

    client.put("/example/config/mode", "blue").await?;
    client.put("/example/config/replicas", "3").await?;

    let mode = client.get("/example/config/mode").await?;
    println!("mode = {:?}", mode.as_ref().and_then(|kv| kv.value_str()));

    for kv in client.range(Get::prefix("/example/config/")).await?.kvs {
        println!(
            "{} = {}",
            kv.key_str().unwrap_or("?"),
            kv.value_str().unwrap_or("?")
        );
    }

    // Compare-and-swap: change the mode only if nobody changed it since we read it.
    let seen = mode.map_or(0, |kv| kv.mod_revision);
    let swap = client
        .txn()
        .when([Compare::mod_revision("/example/config/mode").eq(seen)])
        .then([Op::put("/example/config/mode", "green")])
        .otherwise([Op::get("/example/config/mode")])
        .await?;
    println!("swapped to green: {}", swap.succeeded);
    Ok(())
}
