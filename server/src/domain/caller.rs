//! Who is calling: the verified identity a request carries (from its bearer token), and the
//! permission check every handler makes with it. Imports only `domain` and `error`.

use super::ids::{DomainId, UserId};
use super::permission::{Permission, PermissionSet};
use crate::error::{Error, Fault, Reason};

/// Who is calling: the verified content of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The calling user.
    pub user_id: UserId,
    /// The user's domain: every query of the request is confined to it.
    pub domain_id: DomainId,
    /// What the caller may do.
    pub permissions: PermissionSet,
}

impl Caller {
    /// PERMISSION_DENIED unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), Error> {
        if self.permissions.contains(p) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                Fault::new(
                    Reason::PermissionMissing,
                    format!("this call needs the {p} permission"),
                )
                .with("permission", p.as_str()),
            ))
        }
    }

    /// True when the caller holds `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }
}
