//! Interactions: offer (with identification), accept, close, and binding to contacts.
//!
//! The files: `rows` (the reads the others build on), `bindings` (bind, unbind, history),
//! `offer` (first offers in one statement, re-offers and transfers in a transaction) and
//! `transitions` (answers and ends, one statement each); each imports only those before it.

mod bindings;
mod offer;
mod rows;
mod transitions;

pub use bindings::{BIND_SQL, Binding, bind, history, unbind};
pub use offer::{INSERT_OFFER_SQL, OfferResult, insert_first_offer, offer};
pub use rows::{
    FIND_SQL, OFFER_CONTEXT_SQL, OfferContext, by_ids, find, offer_context, open_for_agent,
};
pub use transitions::{TRANSITION_SQL, accept, close};
