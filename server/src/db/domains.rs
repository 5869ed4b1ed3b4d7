//! Domains (tenants) and the per-request session: the caller's domain settings and name.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{domains, users};
use crate::domain::caller::Caller;
use crate::domain::ids::DomainId;
use crate::domain::phone::Region;
use crate::domain::session::{DomainSettings, Session};
use crate::error::{Error, Fault, Reason};

#[derive(Queryable, Selectable)]
#[diesel(table_name = domains, check_for_backend(diesel::pg::Pg))]
struct DomainRow {
    id: i64,
    name: String,
    default_region: String,
    autolink: bool,
    fallback_digits: i16,
}

impl DomainRow {
    fn into_settings(self) -> Result<DomainSettings, Error> {
        Ok(DomainSettings {
            id: DomainId(self.id),
            default_region: self
                .default_region
                .parse()
                .map_err(|e| Error::Internal(format!("domain {}: {e}", self.id)))?,
            name: self.name,
            autolink: self.autolink,
            fallback_digits: self.fallback_digits,
        })
    }
}

/// A new domain.
#[derive(Debug, Clone)]
pub struct NewDomain<'a> {
    /// Unique name.
    pub name: &'a str,
    /// Default phone region.
    pub default_region: Region,
    /// Autolink setting.
    pub autolink: bool,
    /// Fallback digit count.
    pub fallback_digits: i16,
}

/// Creates a domain.
pub async fn create(conn: &mut AsyncPgConnection, new: &NewDomain<'_>) -> Result<DomainId, Error> {
    let id = diesel::insert_into(domains::table)
        .values((
            domains::name.eq(new.name),
            domains::default_region.eq(new.default_region.code()),
            domains::autolink.eq(new.autolink),
            domains::fallback_digits.eq(new.fallback_digits),
        ))
        .returning(domains::id)
        .get_result(conn)
        .await?;
    Ok(DomainId(id))
}

/// Looks a domain up by name.
pub async fn find_by_name(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<Option<DomainSettings>, Error> {
    domains::table
        .filter(domains::name.eq(name))
        .select(DomainRow::as_select())
        .first(conn)
        .await
        .optional()?
        .map(DomainRow::into_settings)
        .transpose()
}

/// Changes a domain's identification settings.
pub async fn update_settings(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    autolink: bool,
    fallback_digits: i16,
) -> Result<(), Error> {
    let n = diesel::update(domains::table.find(domain.0))
        .set((
            domains::autolink.eq(autolink),
            domains::fallback_digits.eq(fallback_digits),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(Error::domain_not_found(domain));
    }
    Ok(())
}

/// Loads the caller's session: UNAUTHENTICATED when the token names a domain or user that does
/// not exist (for example a token minted for a deleted domain).
pub async fn session(conn: &mut AsyncPgConnection, caller: Caller) -> Result<Session, Error> {
    let (row, user_name) = domains::table
        .inner_join(users::table)
        .filter(domains::id.eq(caller.domain_id.0))
        .filter(users::id.eq(caller.user_id.0))
        .select((DomainRow::as_select(), users::name))
        .first::<(DomainRow, String)>(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            Error::Unauthenticated(Fault::new(
                Reason::TokenUserUnknown,
                "the token's user does not exist in its domain",
            ))
        })?;
    Ok(Session {
        caller,
        domain: Arc::new(row.into_settings()?),
        user_name: user_name.into(),
    })
}
