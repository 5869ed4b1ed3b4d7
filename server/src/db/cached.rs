//! Fixed SQL statements that diesel-async prepares once per connection and reuses.
//!
//! `diesel::sql_query` is never cached: each run costs a parse, a plan and an extra round trip.
//! The hot fixed statements (identification, card loading) are declared here instead as types
//! with a static query id, which diesel's statement cache keys on.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::AstPass;

/// Writes `sql`, calling `bind(n, out)` for each `$n` placeholder in order.
pub fn push_sql_with_binds<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    sql: &'static str,
    bind: impl FnMut(usize, &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>,
) -> QueryResult<()> {
    push_sql_with_binds_owned(out, sql, bind)
}

/// [`push_sql_with_binds`] for SQL built at run time.
pub fn push_sql_with_binds_owned<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    sql: &str,
    mut bind: impl FnMut(usize, &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut rest = sql;
    while let Some(pos) = rest.find('$') {
        out.push_sql(&rest[..pos]);
        let digits: usize = rest[pos + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - pos - 1);
        let n: usize = rest[pos + 1..pos + 1 + digits].parse().unwrap_or(0);
        bind(n, out)?;
        rest = &rest[pos + 1 + digits..];
    }
    out.push_sql(rest);
    Ok(())
}

/// A value bound to a [`Dynamic`] statement.
#[derive(Debug, Clone)]
pub enum Bind {
    /// A `bigint`.
    Int(i64),
    /// A `text`.
    Text(String),
}

/// A statement whose SQL is built at run time, its values always binds: diesel's statement
/// cache keys such statements by SQL text, so each shape is prepared once per connection.
#[derive(Debug, Clone, Default)]
pub struct Dynamic {
    /// The SQL, with `$n` placeholders.
    pub text: String,
    /// The values of the placeholders, in order.
    pub binds: Vec<Bind>,
}

impl Dynamic {
    /// Binds a `bigint`; returns its placeholder.
    pub fn int(&mut self, v: i64) -> String {
        self.binds.push(Bind::Int(v));
        format!("${}", self.binds.len())
    }

    /// Binds a `text`; returns its placeholder.
    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.binds.push(Bind::Text(v.into()));
        format!("${}", self.binds.len())
    }

    /// Binds a list for `IN (...)`, padded to a power of two by repeating its last value (which
    /// changes no result): a handful of shapes serve every length. A list keeps the statement's
    /// generic plan exact, where `= ANY($n)` is planned for ten elements and so re-planned on
    /// every execution. `values` must not be empty.
    pub fn list<T: Clone>(
        &mut self,
        values: &[T],
        bind: impl Fn(&mut Self, T) -> String,
    ) -> String {
        let padded = values.len().max(1).next_power_of_two();
        (0..padded)
            .filter_map(|i| values.get(i).or(values.last()).cloned())
            .map(|v| bind(self, v))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The binds as (SQL type, literal value), for EXPLAIN in tests.
    pub fn args(&self) -> Vec<(&'static str, String)> {
        self.binds
            .iter()
            .map(|b| match b {
                Bind::Int(v) => ("bigint", v.to_string()),
                Bind::Text(t) => ("text", t.clone()),
            })
            .collect()
    }
}

impl diesel::query_builder::QueryId for Dynamic {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Dynamic {
    type SqlType = diesel::sql_types::Untyped;
}

impl diesel::query_builder::QueryFragment<Pg> for Dynamic {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        push_sql_with_binds_owned(&mut out, &self.text, |n, out| {
            match self.binds.get(n.wrapping_sub(1)) {
                Some(Bind::Int(v)) => out.push_bind_param::<diesel::sql_types::BigInt, _>(v),
                Some(Bind::Text(t)) => out.push_bind_param::<diesel::sql_types::Text, _>(t),
                None => Err(diesel::result::Error::QueryBuilderError(
                    format!("statement has no bind ${n}").into(),
                )),
            }
        })
    }
}

/// Declares a cached statement: a struct holding its binds, in `$1, $2, ...` order.
#[macro_export]
macro_rules! cached_statement {
    ($(#[$doc:meta])* $name:ident = $sql:expr; $($field:ident: $sql_ty:ty => $rust_ty:ty),+ $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, diesel::query_builder::QueryId)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: $rust_ty,
            )+
        }

        impl diesel::query_builder::Query for $name {
            type SqlType = diesel::sql_types::Untyped;
        }

        impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for $name {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
            ) -> diesel::QueryResult<()> {
                let binds: &[&dyn Fn(&mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()>] = &[
                    $(&|out| out.push_bind_param::<$sql_ty, _>(&self.$field)),+
                ];
                $crate::db::cached::push_sql_with_binds(&mut out, $sql, |n, out| match binds.get(n.wrapping_sub(1)) {
                    Some(bind) => bind(out),
                    None => Err(diesel::result::Error::QueryBuilderError(
                        format!("no bind ${n} in {}", stringify!($name)).into(),
                    )),
                })
            }
        }
    };
}

#[allow(unused_imports)]
pub(crate) use cached_statement;

/// A `jsonb` column read straight into `T`. diesel reads `jsonb` only as a
/// `serde_json::Value`, a tree then walked and copied out of; reading a card's five arrays
/// into their tuples, or an interaction's candidates and variables into theirs, skips the
/// tree (BENCHMARKS.md runs N and O).
#[derive(Debug, diesel::deserialize::FromSqlRow)]
pub(crate) struct JsonOf<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned>
    diesel::deserialize::FromSql<diesel::sql_types::Jsonb, diesel::pg::Pg> for JsonOf<T>
{
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        // jsonb's binary form: a version byte (1), then the JSON text.
        match value.as_bytes().split_first() {
            Some((1, json)) => Ok(JsonOf(serde_json::from_slice(json)?)),
            _ => Err("unsupported jsonb encoding version".into()),
        }
    }
}

/// A statement whose rows are read by position, as SQL type `ST` (a tuple, or
/// `AsSelect<T, Pg>`: the order `T`'s `Selectable` lists its fields). A statement without a
/// SQL type ([`cached_statement!`], [`Dynamic`]) is read by name, and diesel finds each column
/// by comparing its name with the row's column names in turn: about 200 instructions a column,
/// 2-3 % of a GetClientInfo or a destination search (BENCHMARKS.md run O). The SQL must list
/// the columns in that order; tests compare them (`select_list`, [`positional_row!`]).
pub struct Positional<Q, ST> {
    query: Q,
    sql_type: std::marker::PhantomData<fn() -> ST>,
}

/// `query`, its rows read by position as `ST`.
pub fn positional<ST, Q>(query: Q) -> Positional<Q, ST> {
    Positional {
        query,
        sql_type: std::marker::PhantomData,
    }
}

impl<Q: diesel::query_builder::QueryId, ST> diesel::query_builder::QueryId for Positional<Q, ST> {
    // The same SQL as `Q`: the prepared statement is shared.
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q, ST> diesel::query_builder::Query for Positional<Q, ST> {
    type SqlType = ST;
}

impl<Q: diesel::query_builder::QueryFragment<Pg>, ST> diesel::query_builder::QueryFragment<Pg>
    for Positional<Q, ST>
{
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out)
    }
}

/// Declares a row struct read by position: the struct (deriving `Queryable`), its SQL type (a
/// tuple, for [`positional`]) and, for tests, its fields' names in order (to compare with the
/// statement's output columns, `output_columns`).
#[macro_export]
macro_rules! positional_row {
    ($(#[$doc:meta])* $vis:vis struct $name:ident as $sql:ident, $names:ident {
        $($field:ident: $st:ty => $rt:ty),+ $(,)?
    }) => {
        $(#[$doc])*
        #[derive(diesel::Queryable)]
        $vis struct $name {
            $($field: $rt),+
        }

        /// The SQL type of a row of
        #[doc = concat!("[`", stringify!($name), "`], in its fields' order.")]
        $vis type $sql = ($($st,)+);

        /// The fields of
        #[doc = concat!("[`", stringify!($name), "`], in order.")]
        #[cfg(test)]
        $vis const $names: &[&str] = &[$(stringify!($field)),+];
    };
}

#[allow(unused_imports)]
pub(crate) use positional_row;

/// The output column names of a `SELECT` statement's top-level list (the name after `AS`, or
/// the column's without its table), for tests of positional reads.
#[cfg(test)]
pub fn output_columns(sql: &str) -> Vec<String> {
    let body = sql.trim_start().strip_prefix("SELECT ").unwrap_or(sql);
    let (mut depth, mut items, mut item) = (0_i32, Vec::new(), String::new());
    for ch in body.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(ch);
        if depth == 0 && item.ends_with(" FROM ") {
            item.truncate(item.len() - " FROM ".len());
            break;
        }
    }
    items.push(item);
    items
        .iter()
        .map(|i| {
            let i = i.split_whitespace().collect::<Vec<_>>().join(" ");
            match i.rsplit_once(" AS ") {
                Some((_, name)) => name.to_owned(),
                None => i.rsplit('.').next().unwrap_or(&i).to_owned(),
            }
        })
        .collect()
}

/// The column list diesel writes for `T`'s `Selectable`, unquoted and without table names:
/// what a written-out statement read with [`Positional`] as `AsSelect<T, Pg>` must select.
#[cfg(test)]
pub fn select_list<T>() -> String
where
    T: diesel::Selectable<Pg>,
    T::SelectExpression: diesel::query_builder::QueryFragment<Pg>,
{
    let mut builder = diesel::pg::PgQueryBuilder::default();
    let sql = diesel::query_builder::QueryFragment::<Pg>::to_sql(
        &T::construct_selection(),
        &mut builder,
        &Pg,
    )
    .map(|()| diesel::query_builder::QueryBuilder::<Pg>::finish(builder))
    .unwrap_or_default();
    sql.split(", ")
        .map(|c| c.rsplit('.').next().unwrap_or(c).trim_matches('"'))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::sql_types::{BigInt, Text};

    cached_statement!(
        /// A test statement.
        Probe = "SELECT $2 || x FROM t WHERE a = $1 AND b = $2";
        a: BigInt => i64,
        b: Text => String,
    );

    #[test]
    fn placeholders_become_binds_in_order() {
        let q = Probe {
            a: 7,
            b: "x".into(),
        };
        let sql = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(
            sql.starts_with("SELECT $1 || x FROM t WHERE a = $2 AND b = $3"),
            "{sql}"
        );
        assert!(sql.contains("[\"x\", 7, \"x\"]"), "{sql}");
    }

    #[test]
    fn lists_are_padded_to_a_power_of_two_with_the_last_value() {
        let mut sql = super::Dynamic::default();
        let d = sql.int(1);
        let list = sql.list(&[10_i64, 20, 30], |s, v| s.int(v));
        assert_eq!(d, "$1");
        assert_eq!(list, "$2, $3, $4, $5");
        let values: Vec<String> = sql.args().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["1", "10", "20", "30", "30"]);
        let mut one = super::Dynamic::default();
        assert_eq!(one.list(&["a".to_owned()], |s, v| s.text(v)), "$1");
    }
}
