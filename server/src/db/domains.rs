//! Domains (tenants) and the per-request session: the caller's domain settings and name.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{domains, users};
use crate::domain::caller::{Caller, Identity, Principal, Profile, Realm};
use crate::domain::ids::{DomainId, UserId};
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
    autolink_shared_numbers: bool,
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
            autolink_shared_numbers: self.autolink_shared_numbers,
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
    /// Autolink also on numbers more than one contact holds.
    pub autolink_shared_numbers: bool,
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
            domains::autolink_shared_numbers.eq(new.autolink_shared_numbers),
            domains::fallback_digits.eq(new.fallback_digits),
        ))
        .returning(domains::id)
        .get_result(conn)
        .await?;
    Ok(DomainId(id))
}

/// Sets (or, with `None`, clears) the key an identity provider's tokens name the domain by.
/// NOT_FOUND when there is no such domain; ALREADY_EXISTS when another domain has the key.
pub async fn set_external_key(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    key: Option<&str>,
) -> Result<(), Error> {
    let n = diesel::update(domains::table.find(domain.0))
        .set(domains::external_key.eq(key))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(Error::domain_not_found(domain));
    }
    Ok(())
}

/// Looks a domain up by id.
pub async fn find(
    conn: &mut AsyncPgConnection,
    id: DomainId,
) -> Result<Option<DomainSettings>, Error> {
    domains::table
        .find(id.0)
        .select(DomainRow::as_select())
        .first(conn)
        .await
        .optional()?
        .map(DomainRow::into_settings)
        .transpose()
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

/// A domain's identification settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchSettings {
    /// Bind at once on a single exact match.
    pub autolink: bool,
    /// Autolink also on numbers more than one contact holds.
    pub autolink_shared_numbers: bool,
    /// Last-N-digits fallback length (0: off).
    pub fallback_digits: i16,
}

/// Changes a domain's identification settings.
pub async fn update_settings(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    settings: MatchSettings,
) -> Result<(), Error> {
    let n = diesel::update(domains::table.find(domain.0))
        .set((
            domains::autolink.eq(settings.autolink),
            domains::autolink_shared_numbers.eq(settings.autolink_shared_numbers),
            domains::fallback_digits.eq(settings.fallback_digits),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(Error::domain_not_found(domain));
    }
    Ok(())
}

/// Loads the session of the caller `principal` names: UNAUTHENTICATED when the token names a
/// domain or user that does not exist (for example a token minted for a deleted domain). An
/// identity provider's subject not known in a known domain is created first when `provision`
/// (its name and e-mail from the token).
pub async fn session(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    provision: bool,
) -> Result<Session, Error> {
    let user_unknown = |message: &str| {
        Error::Unauthenticated(Fault::new(Reason::TokenUserUnknown, message.to_owned()))
    };
    let (row, user_id, user_name) = match &principal.identity {
        Identity::Local { domain, user } => domains::table
            .inner_join(users::table)
            .filter(domains::id.eq(domain.0))
            .filter(users::id.eq(user.0))
            .select((DomainRow::as_select(), users::id, users::name))
            .first::<(DomainRow, i64, String)>(conn)
            .await
            .optional()?
            .ok_or_else(|| user_unknown("the token's user does not exist in its domain"))?,
        Identity::External { realm, subject } => {
            let query = domains::table.select(DomainRow::as_select()).into_boxed();
            let query = match realm {
                Realm::Key(key) => query.filter(domains::external_key.eq(key)),
                Realm::Name(name) => query.filter(domains::name.eq(name)),
            };
            let row: DomainRow = query.first(conn).await.optional()?.ok_or_else(|| {
                Error::Unauthenticated(Fault::new(
                    Reason::TokenDomainUnknown,
                    "the token's domain is not a domain of this server (set its external key, \
                     or map the issuer with --jwt-issuer-domain)",
                ))
            })?;
            let known = users::table
                .filter(users::domain_id.eq(row.id))
                .filter(users::external_subject.eq(subject))
                .select((users::id, users::name))
                .first::<(i64, String)>(conn)
                .await
                .optional()?;
            let (id, name) = match known {
                Some(user) => user,
                None if provision => provision_user(conn, row.id, subject, &principal.profile)
                    .await?
                    .ok_or_else(|| user_unknown("the token's user could not be created"))?,
                None => {
                    return Err(user_unknown(
                        "the token's user is not a user of its domain (create it with \
                         `admin create-user --external-subject`, or let the server create users \
                         on first use with --jwt-provision-users)",
                    ));
                }
            };
            (row, id, name)
        }
    };
    Ok(Session {
        caller: Caller {
            user_id: UserId(user_id),
            domain_id: DomainId(row.id),
            permissions: principal.permissions,
        },
        domain: Arc::new(row.into_settings()?),
        user_name: user_name.into(),
    })
}

/// Longest name a provisioned user gets (the column's limit).
const MAX_USER_NAME: usize = 200;

/// Creates the user of an identity provider's `subject` in `domain` (named after the token's
/// `name` or `preferred_username`, else its subject); a concurrent first call of the same
/// user creates it once. Returns its id and name.
async fn provision_user(
    conn: &mut AsyncPgConnection,
    domain: i64,
    subject: &str,
    profile: &Profile,
) -> Result<Option<(i64, String)>, Error> {
    let name: String = profile
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(subject)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_NAME)
        .collect();
    let name = if name.is_empty() {
        "user".to_owned()
    } else {
        name
    };
    let email = profile
        .email
        .as_deref()
        .filter(|e| (3..=254).contains(&e.chars().count()) && !e.chars().any(char::is_control));
    let created: Option<i64> = diesel::insert_into(users::table)
        .values((
            users::domain_id.eq(domain),
            users::name.eq(&name),
            users::external_subject.eq(subject),
            users::email.eq(email),
        ))
        .on_conflict((users::domain_id, users::external_subject))
        .do_nothing()
        .returning(users::id)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(id) = created {
        tracing::info!(domain, user = id, "user created on first use of its token");
        return Ok(Some((id, name)));
    }
    Ok(users::table
        .filter(users::domain_id.eq(domain))
        .filter(users::external_subject.eq(subject))
        .select((users::id, users::name))
        .first::<(i64, String)>(conn)
        .await
        .optional()?)
}
