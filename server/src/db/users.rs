//! Users of a domain (agents, owners, service accounts).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::users;
use crate::domain::contact::UserRef;
use crate::domain::ids::{DomainId, UserId};
use crate::error::Error;

/// Creates a user.
pub async fn create(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    name: &str,
) -> Result<UserId, Error> {
    let id = diesel::insert_into(users::table)
        .values((users::domain_id.eq(domain.0), users::name.eq(name)))
        .returning(users::id)
        .get_result(conn)
        .await?;
    Ok(UserId(id))
}

/// True when `user` exists in `domain`.
pub async fn exists(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    user: UserId,
) -> Result<bool, Error> {
    let found = diesel::select(diesel::dsl::exists(
        users::table
            .filter(users::domain_id.eq(domain.0))
            .filter(users::id.eq(user.0)),
    ))
    .get_result(conn)
    .await?;
    Ok(found)
}

/// The names of the given users of `domain`, as references.
pub async fn refs(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, UserRef>, Error> {
    let rows: Vec<(i64, String)> = users::table
        .filter(users::domain_id.eq(domain.0))
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| {
            (
                id,
                UserRef {
                    id: UserId(id),
                    name,
                },
            )
        })
        .collect())
}

/// Which of the users `ids` (of any domain) still exist.
pub async fn existing(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<std::collections::HashSet<i64>, Error> {
    let rows: Vec<i64> = users::table
        .filter(users::id.eq_any(ids))
        .select(users::id)
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Creates a user that an identity provider names by `subject` (and that has an `email`).
pub async fn create_external(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    name: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<UserId, Error> {
    let id = diesel::insert_into(users::table)
        .values((
            users::domain_id.eq(domain.0),
            users::name.eq(name),
            users::external_subject.eq(subject),
            users::email.eq(email),
        ))
        .returning(users::id)
        .get_result(conn)
        .await?;
    Ok(UserId(id))
}

/// Every user of a domain, by id.
pub async fn list(conn: &mut AsyncPgConnection, domain: DomainId) -> Result<Vec<UserRef>, Error> {
    let rows: Vec<(i64, String)> = users::table
        .filter(users::domain_id.eq(domain.0))
        .order(users::id)
        .select((users::id, users::name))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| UserRef {
            id: UserId(id),
            name,
        })
        .collect())
}
