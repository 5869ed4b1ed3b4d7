//! A CRM sync: stream contacts into `ImportContacts` and read the summary (rejected records
//! come back with their index, field and reason; the valid ones are kept).
//!
//! ```sh
//! CLIENT_INFO_URL=http://127.0.0.1:50051 CLIENT_INFO_TOKEN=$CRM_TOKEN IMPORT_COUNT=1000 \
//!     cargo run -p client-info-sdk --example bulk_import
//! ```
//! The token needs `contacts.write` (the demo's CRM_TOKEN has it).

use client_info_sdk::contacts::{email, phone};
use client_info_sdk::{Client, pb};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CLIENT_INFO_URL").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token = std::env::var("CLIENT_INFO_TOKEN")?;
    let count: usize = std::env::var("IMPORT_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let client = Client::builder(url)
        .token(token)
        .compression(client_info_sdk::Compression::Zstd)
        .timeout(std::time::Duration::from_secs(600))
        .connect()
        .await?;
    let records = (0..count).map(|i| pb::ImportContactsRequest {
        display_name: format!("Imported customer {i}"),
        labels: vec!["Imported".into()],
        attributes: vec![pb::Attribute {
            key: "crm_id".into(),
            value: format!("CRM-{i:07}"),
        }],
        communications: vec![
            phone(format!(
                "+44 20 7{:03} {:04}",
                i / 10_000 % 1000,
                i % 10_000
            )),
            email(format!("customer{i}@example.com")),
        ],
        // One record in a hundred is bad on purpose: it is reported, the rest imported.
        time_zone: if i % 100 == 99 {
            "Mars/Olympus".into()
        } else {
            String::new()
        },
        ..Default::default()
    });
    let summary = client.import_contacts(tokio_stream::iter(records)).await?;
    println!(
        "received {}, imported {}, rejected {}",
        summary.received,
        summary.imported,
        summary.errors.len()
    );
    for e in summary.errors.iter().take(3) {
        println!("record {}: {}: {}", e.index, e.field, e.description);
    }
    Ok(())
}
