//! Typed Rust client for the client-info gRPC API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client_info_sdk::SdkError> {
//! let client = client_info_sdk::Client::builder("http://127.0.0.1:50051")
//!     .token("eyJ...")
//!     .connect()
//!     .await?;
//! let card = client.get_contact(42).await?;
//! println!("{} ({} phones)", card.display_name, card.phones.len());
//! # Ok(()) }
//! ```
//!
//! Every method returns [`SdkError`], whose variants are the status codes a caller acts on
//! (stale version, not found, permission denied, invalid fields with their names, ...).
//!
//! Over a real network: `https://` URLs use TLS with the system's roots
//! ([`ClientBuilder::ca_certificate`] adds a CA, [`ClientBuilder::identity`] presents a client
//! certificate for mTLS), the channel sends HTTP/2 keepalive pings also while idle
//! ([`ClientBuilder::keepalive`]), [`ClientBuilder::compression`] compresses both ways, and a
//! deadline that expires is [`SdkError::DeadlineExceeded`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = client_info_sdk::Client::builder("https://client-info.internal:50051")
//!     .token("eyJ...")
//!     .ca_certificate(std::fs::read("ca.crt")?)
//!     .identity(std::fs::read("routing.crt")?, std::fs::read("routing.key")?)
//!     .compression(client_info_sdk::Compression::Zstd)
//!     .connect()
//!     .await?;
//! # let _ = client; Ok(()) }
//! ```

// Imports inside the crate point one way: `auth` and `error` are leaves; `options` and `retry`
// import `error`; `client` imports `auth`, `error` and `retry`; the service modules (`binding`,
// `contacts`, `interactions`, `merge`, `search`, `watch`) import those, and none of these imports
// a service module (only `binding` uses `contacts`, which never uses it back).
mod auth;
pub mod binding;
mod client;
pub mod contacts;
mod error;
pub mod interactions;
pub mod merge;
mod options;
pub mod retry;
pub mod search;
pub mod watch;

pub use client::{
    AuthChannel, Client, ClientBuilder, Compression, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_TIMEOUT, SdkChannel,
};
pub use error::{ErrorDetail, FieldViolation, PreconditionViolation, SdkError};
/// The prost types the requests use (`FieldMask`, `Timestamp`), re-exported.
pub use prost_types;
pub use retry::RetryPolicy;
/// The gRPC library, re-exported (`tonic::Request`, `tonic::Status`, metadata).
pub use tonic;

/// The generated protobuf types and stubs (package `clientinfo.v1`).
pub use client_info_proto::pb;

/// The examples of `client-sdk/README.md`, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
