//! Query plans at scale: every identification query is an index lookup, with custom and with
//! generic (prepared-statement) plans, on a table seeded with 100,000 contacts.

use client_info_server::db::identification::{
    CHANNEL_SQL, PHONE_EXACT_SQL, PHONE_NATIONAL_SQL, PHONE_SUFFIX_SQL, phone_suffix_statement,
    phone_tiers_statement,
};
use client_info_server::db::outbox::{CONCERNED_AGENTS_SQL, SINCE_SQL};
use client_info_server::db::search::{LABELS_SQL, WordMatches, explainable, lookup};
use client_info_server::db::tx::FLUSH_SQL;
use client_info_server::domain::ids::{DomainId, UserId};
use client_info_server::domain::search::{Condition, DestinationQuery, SearchQuery};
use client_info_tests::TestApp;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

const SEEDED: i64 = 100_000;
/// Name search plans need a table of realistic size: on a small one a scan is rightly cheaper.
const SEARCH_SEEDED: i64 = 300_000;

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// `count` contacts of `user`, with phones, e-mails, attributes, labels and channels, and 2,000
/// more users (the cards' user names are read by primary key, as in a domain with agents).
async fn seed(conn: &mut AsyncPgConnection, domain: i64, user: i64, count: i64) {
    conn.batch_execute(&format!(
        "INSERT INTO contacts (domain_id, display_name, owner_id, created_by, updated_by, last_active_at)
           SELECT {domain},
                  (ARRAY['Anna','Boris','Chloé','Dmitri','Emma','Farid','Greta','Hugo','Ines','Jonas'])[1 + g % 10]
                  || ' ' || (ARRAY['Kowalski','Lefèvre','Müller','Nakamura','Okafor','Popescu','Quinn','Rossi',
                                   'Silva','Tanaka','Ueda','Varga','Weber','Xu','Yilmaz','Zhang'])[1 + (g / 10) % 16]
                  || ' ' || g,
                  {user}, {user}, {user}, now() - g * interval '1 second'
           FROM generate_series(1, {count}) g;
         INSERT INTO contact_emails (domain_id, contact_id, address, normalized)
           SELECT domain_id, id, 'user' || id || '@example.com', 'user' || id || '@example.com'
           FROM contacts WHERE domain_id = {domain};
         INSERT INTO contact_attributes (domain_id, contact_id, key, value)
           SELECT domain_id, id, 'crm_id', 'CRM-' || id FROM contacts WHERE domain_id = {domain};
         INSERT INTO contact_attributes (domain_id, contact_id, key, value)
           SELECT domain_id, id, 'vip', 'yes' FROM contacts WHERE domain_id = {domain} AND id % 1000 = 0;
         INSERT INTO labels (domain_id, name) VALUES ({domain}, 'VIP'), ({domain}, 'Retail');
         INSERT INTO contact_labels (domain_id, contact_id, label_id)
           SELECT c.domain_id, c.id, l.id FROM contacts c JOIN labels l ON l.domain_id = c.domain_id
           WHERE c.domain_id = {domain} AND c.id % (CASE l.name WHEN 'VIP' THEN 100 ELSE 7 END) = 0;
         INSERT INTO labels (domain_id, name) SELECT {domain}, 'Label ' || g FROM generate_series(1, 500) g;
         INSERT INTO contact_phones (domain_id, contact_id, number, e164, region, national_number, digits_reversed)
           SELECT domain_id, id, '07' || lpad(id::text, 9, '0'), '+447' || lpad(id::text, 9, '0'), 'GB',
                  '7' || lpad(id::text, 9, '0'), reverse('447' || lpad(id::text, 9, '0'))
           FROM contacts WHERE domain_id = {domain};
         INSERT INTO contact_messaging_channels (domain_id, contact_id, protocol, external_user_id)
           SELECT domain_id, id, 'telegram', 'tg-' || id FROM contacts WHERE domain_id = {domain};
         INSERT INTO users (domain_id, name) SELECT {domain}, 'Agent ' || g FROM generate_series(1, 2000) g;
         SELECT 1;"
    ))
    .await
    .expect("seed");
    // As autovacuum would have by then: statistics, and the visibility map for index-only scans.
    conn.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
}

fn literal(ty: &str, v: &str) -> String {
    if ty == "text" {
        format!("'{}'", v.replace('\'', "''"))
    } else {
        v.to_owned()
    }
}

/// [`plan`] of a statement with its arguments as (SQL type, value).
async fn plan_with_args(
    conn: &mut AsyncPgConnection,
    name: &str,
    sql: &str,
    args: &[(&str, String)],
    generic: bool,
) -> String {
    let types: Vec<&str> = args.iter().map(|(t, _)| *t).collect();
    let values: Vec<String> = args.iter().map(|(t, v)| literal(t, v)).collect();
    plan(
        conn,
        name,
        &types.join(", "),
        sql,
        &values.join(", "),
        generic,
    )
    .await
}

/// The estimated total cost of a plan (its first line's `cost=start..total`).
fn total_cost(plan: &str) -> f64 {
    plan.split("..")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::MAX)
}

/// [`plan_with_args`] of a statement as a custom plan, then as a generic one.
async fn custom_and_generic(
    conn: &mut AsyncPgConnection,
    name: &str,
    sql: &str,
    args: &[(&str, String)],
) -> [String; 2] {
    [
        plan_with_args(conn, &format!("{name}_custom"), sql, args, false).await,
        plan_with_args(conn, &format!("{name}_generic"), sql, args, true).await,
    ]
}

/// The generic plan costs no more than the custom one (10 % slack), so that PostgreSQL keeps
/// it instead of planning the statement at every call.
fn assert_generic_kept(what: &str, [custom, generic]: &[String; 2]) {
    let (c, g) = (total_cost(custom), total_cost(generic));
    assert!(
        g <= c * 1.1,
        "{what}: the generic plan costs {g} against {c} for a custom one: PostgreSQL would plan \
         every call anew"
    );
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
    seed(&mut conn, d.0, u.0, SEEDED).await;
    let d = d.0;
    let exact = PHONE_EXACT_SQL.replacen("{keys}", "$2, $3", 1);
    let queries = [
        (
            "exact",
            "bigint, text, text",
            exact.as_str(),
            format!("{d}, '+447000012345', '+447000012346'"),
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
    // The exact and national tiers in one statement, as identification runs them: index
    // lookups, the fallback gated by a one-time filter on the tier before it; and a generic
    // plan that costs no more than a custom one, so that PostgreSQL keeps it instead of
    // planning the statement at every call (the suffix tier's range, estimated at 0.5 % of the
    // table in a generic plan, once made it 200 times dearer: the suffix is a statement of
    // its own).
    let keys = ["+447000012345".to_owned(), "+447000012346".to_owned()];
    let tiers = phone_tiers_statement(DomainId(d), &keys, "7000012345");
    let plans = custom_and_generic(&mut conn, "tiers", &tiers.text, &tiers.args()).await;
    for p in &plans {
        assert!(!p.contains("Seq Scan"), "tiers:\n{p}");
        assert_eq!(
            p.matches("One-Time Filter").count(),
            1,
            "tiers: the fallback gated:\n{p}"
        );
    }
    assert_generic_kept("tiers", &plans);
    let suffix = phone_suffix_statement(DomainId(d), "543210000");
    for generic in [false, true] {
        let p = plan_with_args(&mut conn, "suffix", &suffix.text, &suffix.args(), generic).await;
        assert!(!p.contains("Seq Scan"), "suffix (generic: {generic}):\n{p}");
    }
}

#[tokio::test]
async fn search_queries_use_indexes_at_scale() {
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let u = app.user(d, "Owner").await;
    let mut conn = app.db().await;
    seed(&mut conn, d.0, u.0, SEARCH_SEEDED).await;
    let name = |q: &str| Condition::Name(q.into());
    let searches: Vec<(&str, Vec<Condition>, bool, Option<UserId>)> = vec![
        ("name", vec![name("Greta Nakamura 4242")], false, None),
        ("name_typo", vec![name("nakamuar 4242")], false, None),
        (
            "phone",
            vec![Condition::Destination(DestinationQuery::Phone {
                e164: "+447000012345".into(),
            })],
            false,
            None,
        ),
        (
            "digits",
            vec![Condition::Destination(DestinationQuery::Digits(
                "0012345".into(),
            ))],
            false,
            None,
        ),
        (
            "email",
            vec![Condition::Destination(DestinationQuery::Email(
                "user1234".into(),
            ))],
            false,
            None,
        ),
        (
            "attribute",
            vec![Condition::Attribute {
                key: "crm_id".into(),
                value: Some("CRM-4242".into()),
            }],
            false,
            None,
        ),
        (
            "attribute_any",
            vec![Condition::Attribute {
                key: "vip".into(),
                value: None,
            }],
            false,
            None,
        ),
        (
            "messaging",
            vec![Condition::Messaging {
                protocol: "telegram".into(),
                external_user_id: "tg-4242".into(),
            }],
            false,
            None,
        ),
        (
            "name_and_attribute_or",
            vec![
                name("Greta Nakamura 4242"),
                Condition::Attribute {
                    key: "vip".into(),
                    value: None,
                },
            ],
            true,
            Some(u),
        ),
    ];
    for (label, conditions, any, owner) in searches {
        let query = SearchQuery {
            conditions,
            any,
            labels: vec!["VIP".into()],
            owner,
        };
        let words = match query.conditions.as_slice() {
            [Condition::Name(q), ..] => lookup(&mut conn, DomainId(d.0), q).await.expect("lookup"),
            _ => WordMatches::default(),
        };
        // Prepared statements switch to the generic plan once it looks no dearer than the
        // custom ones: check it too whenever it could be chosen.
        for s in explainable(DomainId(d.0), &query, 21, &words) {
            let n = s.label;
            let mut custom_cost = f64::MAX;
            for generic in [false, true] {
                let p = plan_with_args(
                    &mut conn,
                    &format!("s_{label}_{n}_{generic}"),
                    &s.sql,
                    &s.args,
                    generic,
                )
                .await;
                if generic && total_cost(&p) > custom_cost {
                    continue;
                }
                custom_cost = total_cost(&p);
                assert!(!p.contains("Seq Scan"), "{label} ({n}) scans a table:\n{p}");
                assert!(p.contains("Index"), "{label} ({n}) uses no index:\n{p}");
            }
        }
    }
    // The hot search, a phone number with its cards in one statement: its generic plan costs no
    // more than a custom one, so that PostgreSQL keeps it rather than planning every call.
    let by_phone = SearchQuery {
        conditions: vec![Condition::Destination(DestinationQuery::Phone {
            e164: "+447000012345".into(),
        })],
        any: false,
        labels: vec![],
        owner: None,
    };
    let [s] = explainable(DomainId(d.0), &by_phone, 21, &WordMatches::default())
        .try_into()
        .expect("one statement");
    let plans = custom_and_generic(&mut conn, "by_phone", &s.sql, &s.args).await;
    for p in &plans {
        assert!(!p.contains("Seq Scan"), "by phone:\n{p}");
        assert!(
            p.contains("contacts_domain_id_id_key"),
            "by phone: the card by key:\n{p}"
        );
    }
    assert_generic_kept("by phone", &plans);
    // A first name alone (30,000 names start with it), a surname alone (a later word of
    // 18,750 names), the start of one, one with punctuation, and a typo of that surname each
    // read their first page off a btree in result order, with custom and generic plans: no
    // sort of the matches.
    let broad = |q: &str| SearchQuery {
        conditions: vec![name(q)],
        any: false,
        labels: vec![],
        owner: None,
    };
    for (q, band, index) in [
        ("anna", "first_word", "contacts_name_order_idx"),
        ("ann", "prefix", "contacts_name_order_idx"),
        ("kowalski", "later_word", "contact_name_words_pkey"),
        ("kowal", "word", "contact_name_words_pkey"),
        ("o'kowalski", "word", "contact_name_words_pkey"),
        ("kowalsky", "term", "contact_name_words_pkey"),
        ("kowlaski", "term", "contact_name_words_pkey"),
    ] {
        let words = lookup(&mut conn, DomainId(d.0), q).await.expect("lookup");
        let statements = explainable(DomainId(d.0), &broad(q), 21, &words);
        let s = statements
            .iter()
            .find(|s| s.label == band)
            .unwrap_or_else(|| panic!("{q}: no {band} statement"));
        for generic in [false, true] {
            let p = plan_with_args(
                &mut conn,
                &format!("b_{band}_{generic}"),
                &s.sql,
                &s.args,
                generic,
            )
            .await;
            assert!(p.contains(index), "{q} ({band}, generic: {generic}):\n{p}");
            assert!(
                p.contains("Limit"),
                "{q} ({band}, generic: {generic}):\n{p}"
            );
            assert!(
                !p.contains("Sort"),
                "{q} ({band}, generic: {generic}) sorts:\n{p}"
            );
            assert!(
                !p.contains("Gather"),
                "{q} ({band}, generic: {generic}) in parallel:\n{p}"
            );
            assert!(
                !p.contains("Seq Scan"),
                "{q} ({band}, generic: {generic}):\n{p}"
            );
        }
    }
    // The typo's words come from the deletion variants' index, and are the intended ones; a
    // full name with a typo in each word intersects index scans; a query matching nothing
    // runs no statement that scans a table.
    let words = lookup(&mut conn, DomainId(d.0), "kowlaski")
        .await
        .expect("lookup");
    assert_eq!(
        words
            .terms
            .iter()
            .map(|t| t.word.as_str())
            .collect::<Vec<_>>(),
        ["kowalski"]
    );
    let typo = explainable(DomainId(d.0), &broad("kowlaski"), 21, &words);
    let l = typo.iter().find(|s| s.label == "lookup").expect("lookup");
    for generic in [false, true] {
        let p = plan_with_args(
            &mut conn,
            &format!("b_lookup_{generic}"),
            &l.sql,
            &l.args,
            generic,
        )
        .await;
        assert!(p.contains("contact_name_variants_pkey"), "lookup:\n{p}");
        assert!(!p.contains("Seq Scan"), "lookup:\n{p}");
    }
    // A misspelt full name whose words each match one word pages the join of their postings
    // in id order: no grouping of the contacts holding both.
    let words = lookup(&mut conn, DomainId(d.0), "anna kowlaski")
        .await
        .expect("lookup");
    let s = explainable(DomainId(d.0), &broad("anna kowlaski"), 21, &words)
        .into_iter()
        .find(|s| s.label == "words")
        .expect("words");
    for generic in [false, true] {
        let p = plan_with_args(&mut conn, &format!("w_{generic}"), &s.sql, &s.args, generic).await;
        assert!(p.contains("contact_name_words_pkey"), "anna kowlaski:\n{p}");
        assert!(!p.contains("Seq Scan"), "anna kowlaski:\n{p}");
        assert!(!p.contains("HashAggregate"), "anna kowlaski groups:\n{p}");
        assert!(p.contains("Merge Join"), "anna kowlaski:\n{p}");
    }
    for q in [
        "xyzzy",
        "anan kowlaski",
        "kowalski anna",
        "greta nakamura 4242",
        "xyzzy anna",
    ] {
        let words = lookup(&mut conn, DomainId(d.0), q).await.expect("lookup");
        for s in explainable(DomainId(d.0), &broad(q), 21, &words) {
            for generic in [false, true] {
                let label = s.label;
                let p = plan_with_args(
                    &mut conn,
                    &format!("n_{label}_{generic}"),
                    &s.sql,
                    &s.args,
                    generic,
                )
                .await;
                assert!(
                    !p.contains("Seq Scan"),
                    "{q} ({label}, generic: {generic}):\n{p}"
                );
            }
        }
    }
    // A full name shared by thousands of contacts pages straight off the exact-name index,
    // without sorting every match.
    conn.batch_execute(&format!(
        "INSERT INTO contacts (domain_id, display_name, owner_id, created_by, updated_by)
           SELECT {d}, 'Greta Nakamura', {u}, {u}, {u} FROM generate_series(1, 3000);
         ANALYZE contacts",
        d = d.0,
        u = u.0
    ))
    .await
    .expect("seed a common name");
    let common = SearchQuery {
        conditions: vec![name("Greta Nakamura")],
        any: false,
        labels: vec![],
        owner: None,
    };
    let words = lookup(&mut conn, DomainId(d.0), "Greta Nakamura")
        .await
        .expect("lookup");
    let statements = explainable(DomainId(d.0), &common, 21, &words);
    let exact = statements
        .iter()
        .find(|s| s.label == "exact")
        .expect("exact");
    let p = plan_with_args(&mut conn, "s_common_exact", &exact.sql, &exact.args, true).await;
    assert!(p.contains("contacts_name_order_idx"), "common name:\n{p}");
    assert!(!p.contains("Sort"), "common name sorts its matches:\n{p}");
    let p = plan(
        &mut conn,
        "labels",
        "bigint, text, bigint",
        LABELS_SQL,
        &format!("{}, 'vi', 20", d.0),
        false,
    )
    .await;
    assert!(!p.contains("Seq Scan on contact_labels"), "labels:\n{p}");
}

/// The hub's read runs hundreds of times a second through a connection that always uses
/// generic plans (`db::build_generic_plan_pool`): that plan must be the ordered index scan the
/// custom one is, on a table of many events, with no sort.
#[tokio::test]
async fn the_hubs_read_is_an_ordered_index_scan_as_a_generic_plan() {
    let app = TestApp::start().await;
    let d = app.domain("busy", "GB").await;
    let mut conn = app.db().await;
    conn.batch_execute(&format!(
        "INSERT INTO events (domain_id, sequence, agent_ids, payload)
           SELECT {d}, (1::bigint << 50) + (g::bigint << 16), '{{}}', '\\x00'
           FROM generate_series(1, 100000) g",
        d = d.0
    ))
    .await
    .expect("seed events");
    conn.batch_execute("VACUUM ANALYZE events")
        .await
        .expect("vacuum");
    for generic in [false, true] {
        let p = plan(
            &mut conn,
            "since",
            "bigint, bigint, bigint",
            SINCE_SQL,
            &format!("{}, {}, 500", d.0, (1_i64 << 50) + (99_000_i64 << 16)),
            generic,
        )
        .await;
        assert!(!p.contains("Seq Scan on events"), "generic: {generic}\n{p}");
        assert!(!p.contains("Sort"), "generic: {generic}\n{p}");
        assert!(
            p.contains("Index Scan using events_pkey"),
            "generic: {generic}\n{p}"
        );
    }
}

#[tokio::test]
async fn contact_changes_find_concerned_agents_through_indexes() {
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let u = app.user(d, "Agent").await;
    let mut conn = app.db().await;
    // 50,000 open interactions, each with one candidate, as an unclosed backlog would leave.
    conn.batch_execute(&format!(
        "INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id,
                                   outcome, candidates, offered_at)
           SELECT {d}, 'i-' || g, 'call', 'inbound', 'offered', {u}, 'identified',
                  jsonb_build_array(jsonb_build_object('contact_id', g, 'exact', true)), now()
           FROM generate_series(1, 50000) g",
        d = d.0,
        u = u.0
    ))
    .await
    .expect("seed interactions");
    conn.batch_execute("VACUUM ANALYZE interactions")
        .await
        .expect("vacuum");
    for generic in [false, true] {
        let p = plan(
            &mut conn,
            "concerned",
            "bigint, bigint[]",
            CONCERNED_AGENTS_SQL,
            &format!("{}, ARRAY[4242, 4243]::bigint[]", d.0),
            generic,
        )
        .await;
        assert!(!p.contains("Seq Scan"), "generic: {generic}\n{p}");
        assert!(p.contains("interactions_open_candidates_idx"), "{p}");
        assert!(p.contains("interactions_open_bound_idx"), "{p}");
    }
}

#[tokio::test]
async fn the_flush_finds_concerned_agents_through_contact_indexes_with_stale_statistics() {
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let u = app.user(d, "Agent").await;
    let mut conn = app.db().await;
    // Statistics taken while every interaction was closed (as after a vacuum between runs,
    // with autovacuum off), then 20,000 interactions open during the day.
    conn.batch_execute(&format!(
        "INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id,
                                   outcome, candidates, offered_at)
           SELECT {d}, 'closed-' || g, 'call', 'inbound', 'closed', {u}, 'identified',
                  jsonb_build_array(jsonb_build_object('contact_id', g, 'exact', true)), now()
           FROM generate_series(1, 50000) g;
         ANALYZE interactions;
         INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id,
                                   outcome, candidates, offered_at)
           SELECT {d}, 'open-' || g, 'call', 'inbound', 'offered', {u}, 'identified',
                  jsonb_build_array(jsonb_build_object('contact_id', g, 'exact', true)), now()
           FROM generate_series(1, 20000) g",
        d = d.0,
        u = u.0
    ))
    .await
    .expect("seed interactions");
    let types = "bigint, bigint[], text[], bigint[], text[], jsonb[], jsonb[], text[], text[], \
                 bytea[], bigint[], bytea[]";
    let args = format!(
        "{}, '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', '{{}}', ARRAY['{{}}'], ARRAY['{{4242,4243}}'], \
         ARRAY['\\x00'::bytea], '{{}}', '{{}}'",
        d.0
    );
    for generic in [false, true] {
        let p = plan(&mut conn, "flush", types, FLUSH_SQL, &args, generic).await;
        assert!(
            !p.contains("Seq Scan on interactions"),
            "generic: {generic}\n{p}"
        );
        assert!(
            !p.contains("interactions_agent_open_idx"),
            "the agent index walks every open interaction (generic: {generic}):\n{p}"
        );
        assert!(p.contains("interactions_open_candidates_idx"), "{p}");
        assert!(p.contains("interactions_open_bound_idx"), "{p}");
    }
}

#[tokio::test]
async fn duplicate_finding_reads_slices_of_indexes() {
    use client_info_server::db::duplicates::{Cursor, Filters, Kind, explainable};
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let u = app.user(d, "Owner").await;
    let mut conn = app.db().await;
    seed(&mut conn, d.0, u.0, SEEDED).await;
    // One contact in fifty shares its number, e-mail and a name-alike with its neighbour; one in
    // ten has a WhatsApp identity that is a phone number.
    conn.batch_execute(&format!(
        "UPDATE contact_phones SET e164 = '+4479' || lpad((contact_id / 2)::text, 8, '0') \
           WHERE domain_id = {d} AND contact_id % 50 IN (0, 1);
         UPDATE contact_emails SET normalized = 'twin' || (contact_id / 2) || '@example.com' \
           WHERE domain_id = {d} AND contact_id % 50 IN (0, 1);
         UPDATE contact_attributes SET value = 'CRM-T' || (contact_id / 2) \
           WHERE domain_id = {d} AND key = 'crm_id' AND contact_id % 50 IN (0, 1);
         UPDATE contact_messaging_channels SET protocol = 'whatsapp', \
                external_user_id = '447' || lpad(contact_id::text, 9, '0') \
           WHERE domain_id = {d} AND contact_id % 10 = 3",
        d = d.0
    ))
    .await
    .expect("seed duplicates");
    conn.batch_execute("VACUUM ANALYZE").await.expect("vacuum");
    let index = |kind: &str| match kind {
        "Email" => "contact_emails_lookup_idx",
        "Messaging" => "contact_messaging_channels_phone_idx",
        "Phone" => "contact_phones_e164_idx",
        _ => "contact_attributes_lookup_idx",
    };
    for filters in [
        Filters::default(),
        Filters {
            labels: vec!["VIP".into()],
            owner: Some(u),
        },
    ] {
        // Slices as pages meet them: a cursor and the slice's last entry, inside the data.
        let at = |kind: Kind, key: &str, value: &str| Cursor {
            kind,
            key: key.into(),
            value: value.into(),
        };
        let ranges = [
            (
                at(Kind::Email, "twin10@example.com", ""),
                at(Kind::Email, "user5000@example.com", ""),
            ),
            (
                at(Kind::Messaging, "+447000000100", ""),
                at(Kind::Messaging, "+447000005000", ""),
            ),
            (
                at(Kind::Phone, "+447000001000", ""),
                at(Kind::Phone, "+447000006000", ""),
            ),
            (
                at(Kind::Name, "crm_id", "CRM-10000"),
                at(Kind::Name, "crm_id", "CRM-10500"),
            ),
            // A names slice that crosses from one attribute key to the next.
            (
                at(Kind::Name, "crm_id", "CRM-99000"),
                at(Kind::Name, "vip", "yes"),
            ),
        ];
        for (n, (kind, sql, args)) in explainable(DomainId(d.0), &filters, 20, &ranges)
            .into_iter()
            .enumerate()
        {
            let kind = format!("{kind:?}");
            for generic in [false, true] {
                let p = plan_with_args(
                    &mut conn,
                    &format!("dup_{kind}_{n}_{}_{generic}", filters.labels.len()),
                    &sql,
                    &args,
                    generic,
                )
                .await;
                assert!(
                    !p.contains("Seq Scan"),
                    "{kind} (generic: {generic}) scans:\n{p}"
                );
                assert!(
                    p.contains(index(&kind)),
                    "{kind} (generic: {generic}) reads no slice of {}:\n{p}",
                    index(&kind)
                );
                if n % 3 != 1 {
                    // A slice's bound is read in index order, so the scan stops at it.
                    assert!(
                        !p.contains("Sort"),
                        "{kind} bound (generic: {generic}) sorts:\n{p}"
                    );
                } else if filters.labels.is_empty() {
                    // Unfiltered, the values of a slice are grouped as the index gives them
                    // (no sort, no hash) and the limit stops the scan; filtered, the planner may
                    // sort the slice's (at most 2,500) entries, which its bound caps.
                    let cand = p
                        .split("CTE ")
                        .find(|part| part.starts_with("cand"))
                        .unwrap_or_default();
                    assert!(
                        !cand.contains("Sort") && !cand.contains("HashAggregate"),
                        "{kind} (generic: {generic}) sorts or hashes its values:\n{p}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_clients_history_reads_indexes_whatever_the_interactions() {
    use client_info_server::db::history::HISTORY_SQL;
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let u = app.user(d, "Agent").await;
    let mut conn = app.db().await;
    seed(&mut conn, d.0, u.0, 20_000).await;
    // 300,000 interactions bound to the 20,000 contacts over 100 days, one in twenty open.
    conn.batch_execute(&format!(
        "INSERT INTO interactions (domain_id, external_id, kind, direction, state, agent_id,
                                   outcome, candidates, offered_at, closed_at, bound_contact_id,
                                   queue_id, queue_name)
           SELECT {d}, 'h-' || g, 'call', 'inbound',
                  CASE WHEN g % 20 = 0 THEN 'accepted' ELSE 'closed' END, {u}, 'identified', '[]',
                  now() - (g % 100) * interval '1 day',
                  CASE WHEN g % 20 = 0 THEN NULL ELSE now() - (g % 100) * interval '1 day' END,
                  f.first + g % 20000, 'q1', 'Support'
           FROM generate_series(1, 300000) g,
                (SELECT min(id) AS first FROM contacts WHERE domain_id = {d}) f",
        d = d.0,
        u = u.0
    ))
    .await
    .expect("seed interactions");
    conn.batch_execute("VACUUM ANALYZE interactions")
        .await
        .expect("vacuum");
    let contact: i64 = {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::sql_query(format!(
            "SELECT min(id) + 777 AS id FROM contacts WHERE domain_id = {}",
            d.0
        ))
        .get_result::<Id>(&mut conn)
        .await
        .expect("a contact")
        .id
    };
    let plans = custom_and_generic(
        &mut conn,
        "history",
        HISTORY_SQL,
        &[
            ("bigint", d.0.to_string()),
            ("bigint", contact.to_string()),
            ("text", "h-now".to_owned()),
        ],
    )
    .await;
    for p in &plans {
        assert!(!p.contains("Seq Scan on interactions"), "{p}");
        assert!(p.contains("interactions_contact_history_idx"), "{p}");
        assert!(p.contains("interactions_open_bound_idx"), "{p}");
    }
    assert_generic_kept("history", &plans);
}
