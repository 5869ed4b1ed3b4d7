//! Rules that are not SQL: identifiers, permissions, phone and e-mail normalisation, contact
//! field validation. Pure functions and plain types, unit-tested without a database.

pub mod contact;
pub mod email;
pub mod identify;
pub mod ids;
pub mod interaction;
pub mod merge;
pub mod permission;
pub mod phone;
pub mod phone_validity;
pub mod search;
pub mod text;
