//! Operator commands (`client-info-server admin ...`): create domains and users, mint tokens.
//! Each migrates the database first, so they work on a fresh machine.

use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection};

use crate::auth::TokenKeys;
use crate::db::{self, domains, users};
use crate::domain::ids::{DomainId, UserId};
use crate::domain::permission::Permission;
use crate::domain::phone::Region;
use crate::error::{Error, Fault, Reason};

/// Creates the database when missing, migrates it, and connects.
pub async fn connect(database_url: &str) -> Result<AsyncPgConnection, Error> {
    db::ensure_database(database_url).await?;
    db::run_migrations(database_url).await?;
    Ok(AsyncPgConnection::establish(database_url).await?)
}

/// Creates a domain and returns its id.
pub async fn create_domain(
    database_url: &str,
    name: &str,
    region: Region,
    autolink: bool,
    fallback_digits: i16,
) -> Result<DomainId, Error> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("NAME", "must be 1 to 200 characters"));
    }
    check_fallback_digits(fallback_digits)?;
    let mut conn = connect(database_url).await?;
    if domains::find_by_name(&mut conn, name.trim())
        .await?
        .is_some()
    {
        return Err(Error::AlreadyExists(Fault::new(
            Reason::AlreadyExists,
            format!("a domain named {name:?} exists"),
        )));
    }
    domains::create(
        &mut conn,
        &domains::NewDomain {
            name: name.trim(),
            default_region: region,
            autolink,
            autolink_shared_numbers: true,
            fallback_digits,
        },
    )
    .await
}

/// Creates a user in a domain and returns its id.
pub async fn create_user(
    database_url: &str,
    domain: DomainId,
    name: &str,
) -> Result<UserId, Error> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("NAME", "must be 1 to 200 characters"));
    }
    let mut conn = connect(database_url).await?;
    match users::create(&mut conn, domain, name.trim()).await {
        Err(Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        ))) => Err(Error::domain_not_found(domain)),
        other => other,
    }
}

/// Changes a domain's match policy (`None` keeps a setting); returns the settings in force.
pub async fn set_match_policy(
    database_url: &str,
    domain: DomainId,
    autolink: Option<bool>,
    shared_numbers: Option<bool>,
    fallback_digits: Option<i16>,
) -> Result<domains::MatchSettings, Error> {
    if let Some(n) = fallback_digits {
        check_fallback_digits(n)?;
    }
    let mut conn = connect(database_url).await?;
    let now = domains::find(&mut conn, domain)
        .await?
        .ok_or_else(|| Error::domain_not_found(domain))?;
    let settings = domains::MatchSettings {
        autolink: autolink.unwrap_or(now.autolink),
        autolink_shared_numbers: shared_numbers.unwrap_or(now.autolink_shared_numbers),
        fallback_digits: fallback_digits.unwrap_or(now.fallback_digits),
    };
    domains::update_settings(&mut conn, domain, settings).await?;
    Ok(settings)
}

fn check_fallback_digits(n: i16) -> Result<(), Error> {
    if n != 0 && !(6..=15).contains(&n) {
        return Err(Error::invalid(
            "--fallback-digits",
            "must be 0 (off) or 6 to 15",
        ));
    }
    Ok(())
}

/// Sets the key an identity provider's tokens name a domain by (the value of their
/// `--jwt-domain-claim`); an empty key clears it.
pub async fn set_domain_key(database_url: &str, domain: DomainId, key: &str) -> Result<(), Error> {
    let key = key.trim();
    if key.chars().count() > 200 || key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "--external-key",
            "must be at most 200 characters, none a control character",
        ));
    }
    let mut conn = connect(database_url).await?;
    domains::set_external_key(&mut conn, domain, (!key.is_empty()).then_some(key)).await
}

/// Creates a user that an identity provider's tokens name by `subject` (their `sub`, or the
/// `--jwt-subject-claim`), in a domain; returns its id.
pub async fn create_external_user(
    database_url: &str,
    domain: DomainId,
    name: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<UserId, Error> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("NAME", "must be 1 to 200 characters"));
    }
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 255 {
        return Err(Error::invalid(
            "--external-subject",
            "must be 1 to 255 characters",
        ));
    }
    if email.is_some_and(|e| !(3..=254).contains(&e.chars().count())) {
        return Err(Error::invalid("--email", "must be 3 to 254 characters"));
    }
    let mut conn = connect(database_url).await?;
    match users::create_external(&mut conn, domain, name.trim(), subject, email).await {
        Err(Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        ))) => Err(Error::domain_not_found(domain)),
        other => other,
    }
}

/// Creates `count` users named `PREFIX-1` ... in one transaction; returns their ids.
pub async fn create_users(
    database_url: &str,
    domain: DomainId,
    prefix: &str,
    count: u32,
) -> Result<Vec<UserId>, Error> {
    if prefix.trim().is_empty() || prefix.chars().count() > 100 {
        return Err(Error::invalid(
            "--name-prefix",
            "must be 1 to 100 characters",
        ));
    }
    let mut conn = connect(database_url).await?;
    let mut ids = Vec::with_capacity(count as usize);
    for i in 1..=count {
        match users::create(&mut conn, domain, &format!("{}-{i}", prefix.trim())).await {
            Ok(id) => ids.push(id),
            Err(Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ))) => return Err(Error::domain_not_found(domain)),
            Err(e) => return Err(e),
        }
    }
    Ok(ids)
}

/// Mints a token for an existing user of a domain.
pub async fn mint_token(
    database_url: &str,
    secret: &[u8],
    domain: DomainId,
    user: UserId,
    permissions: &[Permission],
    ttl: Duration,
) -> Result<String, Error> {
    let mut conn = connect(database_url).await?;
    if !users::exists(&mut conn, domain, user).await? {
        return Err(Error::NotFound(Fault::new(
            Reason::UserNotFound,
            format!("user {user} in domain {domain} not found"),
        )));
    }
    TokenKeys::new(secret).mint(domain, user, permissions, ttl)
}
