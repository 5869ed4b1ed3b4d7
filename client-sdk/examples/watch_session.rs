//! An agent desktop's live panel: the session snapshot, then every change, resuming by
//! itself across dropped connections and server restarts.
//!
//! ```sh
//! CLIENT_INFO_URL=http://127.0.0.1:50051 CLIENT_INFO_TOKEN=$ALICE_TOKEN WATCH_SECONDS=30 \
//!     cargo run -p client-info-sdk --example watch_session
//! ```
//! The token needs `interactions.handle` (the demo's ALICE_TOKEN has it).

use std::time::Duration;

use client_info_sdk::Client;
use client_info_sdk::pb::agent_event::Event;
use client_info_sdk::watch::WatchOptions;
use tokio_stream::StreamExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLIENT_INFO_URL").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("CLIENT_INFO_TOKEN")?;
    let seconds: u64 = std::env::var("WATCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let client = Client::builder(url).token(token).connect().await?;
    let events = client.watch_session(WatchOptions::default());
    let mut events = std::pin::pin!(events.timeout(Duration::from_secs(seconds)));
    while let Some(Ok(event)) = events.next().await {
        let event = event?; // only errors reconnecting cannot fix end the stream
        match event.event {
            Some(Event::Snapshot(s)) => {
                println!(
                    "#{} snapshot: {} open interactions",
                    event.sequence,
                    s.panels.len()
                );
            }
            Some(Event::InteractionOffered(o)) => println!(
                "#{} offered: {}",
                event.sequence,
                o.panel.map(|p| p.interaction_id).unwrap_or_default()
            ),
            Some(other) => println!("#{} {other:?}", event.sequence),
            None => {}
        }
    }
    Ok(())
}
