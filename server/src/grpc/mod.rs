//! gRPC services: one file per service, a struct holding the shared state and thin handlers.
//! Every handler takes the same five steps: decode the request into a typed command
//! ([`decode`]), authorize the [`Call`]'s caller, call one function of [`crate::app`], and
//! encode what it returns ([`crate::wire`]'s forms); errors become statuses in one place
//! ([`crate::error`]).
//!
//! The top of the request path: imports `app`, `wire`, [`crate::rpc`] (the request's
//! deadline), `domain` and `error`; nothing below imports it.

pub mod client_info;
pub mod contact_binding;
pub mod contact_search;
pub mod contacts;
pub mod decode;
pub mod interactions;

use std::sync::Arc;

use tonic::Request;

use crate::app::{Call, Lsn, LsnError, Scope};
use crate::domain::caller::{CallerSlot, Principal};
use crate::domain::permission::Permission;
use crate::error::{Error, Fault, Reason};
use crate::rpc::{Deadline, MIN_POSITION_HEADER};

/// The call a request makes: what its verified token says, the client's deadline, and where
/// the resolved caller goes for the access log (all three put in the request's extensions by
/// the per-RPC layer), and the WAL position its reads must show (the
/// `x-client-info-min-lsn` header; INVALID_ARGUMENT naming it when it is not one).
pub fn call<T>(request: &Request<T>) -> Result<Call, Error> {
    let min_position = match request.metadata().get(MIN_POSITION_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<Lsn>().ok())
                .ok_or_else(|| Error::invalid(MIN_POSITION_HEADER, LsnError.to_string()))?,
        ),
    };
    let extensions = request.extensions();
    let principal = extensions.get::<Arc<Principal>>().cloned().ok_or_else(|| {
        Error::Unauthenticated(Fault::new(Reason::TokenMissing, "missing bearer token"))
    })?;
    Ok(Call {
        principal,
        deadline: extensions.get::<Deadline>().map(|d| d.0),
        resolved: extensions.get::<Arc<CallerSlot>>().cloned(),
        min_position,
    })
}

/// Which contacts a read may show the caller: any with `contacts.read`; else, with
/// `interactions.handle`, those of the interaction it names (PERMISSION_DENIED naming
/// `contacts.read` when it names none: `needs` says what the call needs).
pub fn scope(caller: &Principal, interaction: Option<&str>, needs: &str) -> Result<Scope, Error> {
    if caller.has(Permission::ContactsRead) {
        return Ok(Scope::Domain);
    }
    caller.require(Permission::InteractionsHandle)?;
    match interaction {
        Some(id) => Ok(Scope::Interaction(id.to_owned())),
        None => Err(Error::PermissionDenied(
            Fault::new(Reason::PermissionMissing, needs).with("permission", "contacts.read"),
        )),
    }
}
