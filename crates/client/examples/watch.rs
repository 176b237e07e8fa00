//! A watch that survives member failures: it prints the next 5 changes under a prefix
//! (this program makes them itself), resuming from the last revision it delivered if its
//! member goes away.
//!
//! `cargo run -p conclave-client --example watch`

mod common;

use conclave_client::watch::Watch;
use conclave_client::Client;
use futures::StreamExt;

#[tokio::main]
async fn main() -> conclave_client::Result<()> {
    let client = Client::connect(common::endpoints()).await?;
    let mut events = client.watch(Watch::prefix("/example/events/").prev_kv()).await?;
    println!("watching from revision {}", events.created_revision() + 1);

    let writer = client.clone();
    tokio::spawn(async move {
        for i in 0..5 {
            if let Err(e) = writer
                .put(format!("/example/events/{i}"), format!("event {i}"))
                .await
            {
                eprintln!("put failed: {e}");
            }
        }
    });

    for _ in 0..5 {
        match events.next().await {
            Some(event) => {
                let event = event?;
                println!(
                    "{:?} {} = {} (revision {})",
                    event.kind,
                    event.kv.key_str().unwrap_or("?"),
                    event.kv.value_str().unwrap_or("?"),
                    event.revision()
                );
            }
            None => break,
        }
    }
    Ok(())
}
