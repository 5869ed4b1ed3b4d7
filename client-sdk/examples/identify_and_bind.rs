//! A call reaches an agent: create the client's contact, offer the call from its number,
//! accept it, read the Client info panel (identified), and bind the call to the contact.
//!
//! ```sh
//! CLIENT_INFO_URL=http://127.0.0.1:50051 CLIENT_INFO_TOKEN=... AGENT_ID=7 \
//!     cargo run -p client-info-sdk --example identify_and_bind
//! ```
//! The token needs `contacts.write`, `interactions.route` and `interactions.handle`, and
//! AGENT_ID must be its own user (the agent who answers); mint one with
//! `client-info-server admin mint-token`.

use client_info_sdk::{Client, SdkError};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLIENT_INFO_URL").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("CLIENT_INFO_TOKEN")?;
    let agent: i64 = std::env::var("AGENT_ID")?.parse()?;
    let client = Client::builder(url).token(token).connect().await?;

    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let number = format!("+447400{:06}", run % 1_000_000);
    let created = client
        .new_contact("Ann Lee")
        .time_zone("Europe/London")
        .label("VIP")
        .phone(number.as_str())
        .request_id(format!("example-{run}"))
        .await?;
    println!("contact {} created", created.contact.id);

    let call = format!("example-call-{run}");
    let offered = client
        .offer_call(call.as_str(), number.as_str(), agent)
        .queue("q1", "Support")
        .variable("lang", "en")
        .await?;
    println!("offered: {:?}", offered.identification.map(|i| i.outcome()));
    client.accept_interaction(call.as_str(), agent).await?;

    let panel = client.get_client_info(call.as_str()).await?;
    for candidate in &panel.candidates {
        println!("candidate: {:?}", candidate.contact);
    }
    match client
        .select_contact(call.as_str(), created.contact.id)
        .await
    {
        Ok(panel) => println!(
            "call {call} bound to contact {}",
            panel
                .bound_contact
                .map(|_| created.contact.id)
                .unwrap_or_default()
        ),
        Err(SdkError::FailedPrecondition(d)) => println!("cannot bind: {d} ({:?})", d.reason),
        Err(e) => return Err(e.into()),
    }
    client.close_interaction(call.as_str()).await?;
    Ok(())
}
