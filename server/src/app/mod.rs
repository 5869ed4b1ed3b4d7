//! The application layer: one function per write the API offers, between the gRPC handlers
//! and the store. A handler decodes its request into a typed command
//! ([`crate::grpc::decode`]), checks the caller's permission, calls one function here and
//! encodes what it returns; every function here runs its change as one unit of work
//! ([`crate::db::tx::write`]): the transaction, the audit records and the session events the
//! change produces, written together at commit, then announced. The hottest writes (a first
//! offer, an answer, an end) are each one statement that writes its events itself, atomic on
//! its own and so without a transaction's two extra round trips
//! ([`crate::db::interactions::insert_first_offer`], [`crate::db::interactions::accept`],
//! [`crate::db::interactions::close`]). No handler opens a transaction or publishes an event
//! itself.

pub mod binding;
pub mod contacts;
pub mod interactions;
pub mod merge;
