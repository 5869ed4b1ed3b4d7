//! The application layer: one function per write the API offers, between the gRPC handlers
//! and the store. A handler decodes its request into a typed command
//! ([`crate::grpc::decode`]), checks the caller's permission, calls one function here and
//! encodes what it returns; every function here runs its change as one unit of work
//! ([`crate::db::tx::write`]): the transaction, the audit records and the session events the
//! change produces, written together at commit. No handler opens a transaction or publishes
//! an event itself.

pub mod binding;
pub mod contacts;
pub mod interactions;
pub mod merge;
