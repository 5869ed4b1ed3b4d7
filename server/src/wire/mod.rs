//! The wire forms of domain values: the protobuf cards, panels and session events that the
//! outbox stores and the streams and responses send ([`encode`], [`panel`], [`events`]). No
//! queries: the application layer loads what a form shows and hands it in.
//!
//! Below the application layer: imports `db` (for the types of what it encodes: stored events,
//! merge outcomes), [`crate::auth`] (read-only links are signed), `domain` and `error`; nothing
//! here imports `app`, `grpc` or a server-wide module above it.

pub mod changes;
pub mod encode;
pub mod events;
pub mod panel;
pub mod scrub;
