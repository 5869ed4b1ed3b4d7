//! Query plans at scale: every identification query is an index lookup, with custom and with
//! generic (prepared-statement) plans, on a table seeded with 100,000 contacts.

use client_info_server::db::identification::{
    CHANNEL_SQL, PHONE_EXACT_SQL, PHONE_NATIONAL_SQL, PHONE_SUFFIX_SQL,
};
use client_info_tests::TestApp;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

const SEEDED: i64 = 100_000;

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

async fn seed(conn: &mut AsyncPgConnection, domain: i64, user: i64) {
    conn.batch_execute(&format!(
        "INSERT INTO contacts (domain_id, display_name, owner_id, created_by, updated_by, last_active_at)
           SELECT {domain}, 'Contact ' || g, {user}, {user}, {user}, now() - g * interval '1 second'
           FROM generate_series(1, {SEEDED}) g;
         INSERT INTO contact_phones (domain_id, contact_id, number, e164, region, national_number, digits_reversed)
           SELECT domain_id, id, '07' || lpad(id::text, 9, '0'), '+447' || lpad(id::text, 9, '0'), 'GB',
                  '7' || lpad(id::text, 9, '0'), reverse('447' || lpad(id::text, 9, '0'))
           FROM contacts WHERE domain_id = {domain};
         INSERT INTO contact_messaging_channels (domain_id, contact_id, protocol, external_user_id)
           SELECT domain_id, id, 'telegram', 'tg-' || id FROM contacts WHERE domain_id = {domain};
         ANALYZE;"
    ))
    .await
    .expect("seed");
}

async fn plan(
    conn: &mut AsyncPgConnection,
    name: &str,
    types: &str,
    sql: &str,
    args: &str,
    generic: bool,
) -> String {
    conn.batch_execute(&format!(
        "SET plan_cache_mode = {}; PREPARE {name} ({types}) AS {sql}",
        if generic {
            "force_generic_plan"
        } else {
            "force_custom_plan"
        }
    ))
    .await
    .expect("prepare");
    let lines: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN EXECUTE {name} ({args})"))
        .load(conn)
        .await
        .expect("explain");
    conn.batch_execute(&format!("DEALLOCATE {name}"))
        .await
        .expect("deallocate");
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn identification_queries_use_indexes_at_scale() {
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let u = app.user(d, "Owner").await;
    let mut conn = app.db().await;
    seed(&mut conn, d.0, u.0).await;
    let d = d.0;
    let queries = [
        (
            "exact",
            "bigint, text[]",
            PHONE_EXACT_SQL,
            format!("{d}, ARRAY['+447000012345']"),
        ),
        (
            "national",
            "bigint, text",
            PHONE_NATIONAL_SQL,
            format!("{d}, '7000012345'"),
        ),
        (
            "suffix",
            "bigint, text, text",
            PHONE_SUFFIX_SQL,
            format!("{d}, '543210000', '543210000:'"),
        ),
        (
            "channel",
            "bigint, text, text",
            CHANNEL_SQL,
            format!("{d}, 'telegram', 'tg-12345'"),
        ),
    ];
    for (name, types, sql, args) in &queries {
        for generic in [false, true] {
            let p = plan(&mut conn, name, types, sql, args, generic).await;
            assert!(
                !p.contains("Seq Scan"),
                "{name} (generic: {generic}) scans a table:\n{p}"
            );
            assert!(
                p.contains("Index"),
                "{name} (generic: {generic}) uses no index:\n{p}"
            );
        }
    }
}
