//! Who is calling: what a verified bearer token says ([`Principal`]), the caller it resolves
//! to ([`Caller`]), and the permission check every handler makes. Imports only `domain` and
//! `error`.

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

/// PERMISSION_DENIED unless `permissions` holds `p`.
fn require(permissions: PermissionSet, p: Permission) -> Result<(), Error> {
    if permissions.contains(p) {
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

impl Caller {
    /// PERMISSION_DENIED unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), Error> {
        require(self.permissions, p)
    }

    /// True when the caller holds `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }
}

/// Who a verified bearer token says is calling, before the database is asked: the server's
/// own tokens name the user and domain by id; an identity provider's name the user by its
/// subject and the domain by a key of the domain's. The session resolves it into a
/// [`Caller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub identity: Identity,
    /// What the token lets the caller do.
    pub permissions: PermissionSet,
    /// When the token expires (seconds since the Unix epoch): a session stream ends then.
    pub expires_at: i64,
    /// What the token says of the user (an identity provider's), for provisioning.
    pub profile: Profile,
}

/// The user a token names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A client-info token: the user and its domain by id.
    Local {
        /// The domain.
        domain: DomainId,
        /// The user.
        user: UserId,
    },
    /// An identity provider's token: the domain it belongs to and the user's subject there.
    External {
        /// Which domain.
        realm: Realm,
        /// The user's subject (the `sub` claim, or the claim configured instead): any string.
        subject: String,
    },
}

/// How an identity provider's token names its domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Realm {
    /// By the value of a claim, matched with the domain's external key.
    Key(String),
    /// By the domain's name, fixed for the token's issuer.
    Name(String),
}

/// What an identity provider says of a user, for provisioning it on first use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// A display name (`name`, else `preferred_username`).
    pub name: Option<String>,
    /// An e-mail address (`email`).
    pub email: Option<String>,
}

impl Principal {
    /// The principal of a resolved caller (a client-info token).
    pub fn local(caller: Caller, expires_at: i64) -> Self {
        Self {
            identity: Identity::Local {
                domain: caller.domain_id,
                user: caller.user_id,
            },
            permissions: caller.permissions,
            expires_at,
            profile: Profile::default(),
        }
    }

    /// PERMISSION_DENIED unless the token grants `p`.
    pub fn require(&self, p: Permission) -> Result<(), Error> {
        require(self.permissions, p)
    }

    /// True when the token grants `p`.
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }

    /// The caller when the token names it by ids (a client-info token), without asking the
    /// database.
    pub fn known_caller(&self) -> Option<Caller> {
        match self.identity {
            Identity::Local { domain, user } => Some(Caller {
                user_id: user,
                domain_id: domain,
                permissions: self.permissions,
            }),
            Identity::External { .. } => None,
        }
    }
}

/// What a request's handling tells the per-RPC layer that made it, once it ends: the caller
/// it resolved to, for the access log (filled from a token that names its caller by ids, or
/// by the session from an identity provider's token), and whether it used the primary
/// database (its response then carries the primary's WAL position, which the caller's later
/// reads from standbys wait for).
#[derive(Debug, Default)]
pub struct CallerSlot {
    caller: std::sync::OnceLock<Caller>,
    primary: std::sync::atomic::AtomicBool,
}

impl CallerSlot {
    /// Records the caller (the first record stays).
    pub fn set(&self, caller: Caller) {
        let _ = self.caller.set(caller);
    }

    /// The caller, once recorded.
    pub fn get(&self) -> Option<Caller> {
        self.caller.get().copied()
    }

    /// Records that the request used the primary.
    pub fn used_primary(&self) {
        self.primary
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when the request used the primary.
    pub fn primary_used(&self) -> bool {
        self.primary.load(std::sync::atomic::Ordering::Relaxed)
    }
}
