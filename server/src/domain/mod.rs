//! Rules that are not SQL: identifiers, the caller and its session, permissions, phone and
//! e-mail normalisation, contact field validation and drafts, identification, merge rules.
//! Pure functions and plain types, unit-tested without a database.
//!
//! The lowest layer: it imports nothing of the server but [`crate::error`] (the one error
//! type, itself a leaf).

pub mod caller;
pub mod contact;
pub mod email;
pub mod erase;
pub mod identify;
pub mod ids;
pub mod interaction;
pub mod merge;
pub mod permission;
pub mod phone;
pub mod phone_validity;
pub mod search;
pub mod session;
pub mod text;
