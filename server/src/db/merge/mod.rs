//! Merging duplicate contacts, and undoing a merge, each in the caller's unit of work.
//!
//! A merge moves the merged contacts' phones, e-mails, messaging identities, labels and
//! interaction bindings onto the survivor (rows keep their ids, bindings their who and when),
//! folds them into the survivor among open interactions' candidates, and deletes their rows:
//! identification and search never see them again. What an undo needs is archived in
//! `contact_merges.archive`; `merged_contacts` answers "where did contact N go?"
//! ([`super::merged`]).
//!
//! # Locks
//!
//! Every writer of the server takes its row locks in one order: interactions, then messaging
//! identities, then contacts (select, create-from-interaction and relink already do; see
//! `db::binding` and `db::contacts`). A merge locks, in that order and each class in ascending
//! id, the open interactions that have a merged contact bound or as a candidate, the identities
//! of every contact of the merge, and the contacts; an undo locks its merge record, then the
//! open interactions that show the survivor, the archived identities, and the survivor. So two
//! merges of overlapping sets, or a merge and a relink, update, delete or select on one of its
//! contacts, wait for each other instead of deadlocking; the second then finds a stale version
//! (ABORTED) or a merged contact (NOT_FOUND, CONTACT_MERGED). Any deadlock left is answered
//! ABORTED with reason CONCURRENT_CHANGE (see `error.rs`).
//!
//! The files: `archive` (what an undo needs, as stored), `links` (moving rows between
//! contacts), `merge` (the merge) and `undo` (undoing it), each importing only those
//! before it.

mod archive;
mod links;
#[expect(
    clippy::module_inception,
    reason = "the merge itself, beside its archive, its row moves and its undo"
)]
mod merge;
mod undo;

pub use merge::{Merged, Touched, merge};
pub use undo::{ArchivedLink, Conflict, ConflictKind, Unmerged, unmerge};
