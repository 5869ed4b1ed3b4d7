//! The per-request session: the caller with its domain's settings and its own name, read once
//! per request (or taken from the session cache). Imports only `domain`.

use std::sync::Arc;

use super::caller::Caller;
use super::ids::DomainId;
use super::phone::Region;

/// A domain's settings.
#[derive(Debug, Clone)]
pub struct DomainSettings {
    /// Id.
    pub id: DomainId,
    /// Name.
    pub name: String,
    /// Region for numbers written without a country code.
    pub default_region: Region,
    /// Bind at once when exactly one contact matches exactly.
    pub autolink: bool,
    /// With `autolink`, also on a caller's number more than one contact holds.
    pub autolink_shared_numbers: bool,
    /// Last-N-digits fallback length (0: off).
    pub fallback_digits: i16,
}

/// What every request knows about its caller: the domain's settings and the calling user's
/// name, read together with the check that the user exists in that domain (from the database,
/// or from the session cache).
#[derive(Debug, Clone)]
pub struct Session {
    /// The verified caller.
    pub caller: Caller,
    /// The caller's domain.
    pub domain: Arc<DomainSettings>,
    /// The calling user's name.
    pub user_name: Arc<str>,
}

impl DomainSettings {
    /// What autolink may do in this domain.
    pub fn autolink_policy(&self) -> super::identify::AutolinkPolicy {
        super::identify::AutolinkPolicy {
            enabled: self.autolink,
            shared_numbers: self.autolink_shared_numbers,
        }
    }
}
