//! Contact search: each condition and combination, formats, literal special characters,
//! paging, reasons, permissions, tenancy, bad input, label autocomplete.

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::interactions::call;
use client_info_sdk::{Client, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, Actor, TestApp, expect_code, expect_invalid};
use tonic::Code;

struct World {
    app: TestApp,
    crm: Actor,
}

async fn world(region: &str) -> World {
    let app = TestApp::start().await;
    let d = app.domain("acme", region).await;
    let crm = app.actor(d, "CRM", ALL).await;
    World { app, crm }
}

async fn add(
    client: &Client,
    name: &str,
    labels: &[&str],
    attrs: &[(&str, &str)],
    comms: Vec<pb::CommunicationInput>,
) -> i64 {
    client
        .create_contact(pb::CreateContactRequest {
            display_name: name.into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            attributes: attrs
                .iter()
                .map(|(k, v)| pb::Attribute {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            communications: comms,
            ..Default::default()
        })
        .await
        .expect("create")
        .0
        .id
}

fn q() -> pb::SearchContactsRequest {
    pb::SearchContactsRequest::default()
}

fn by_name(name: &str) -> pb::SearchContactsRequest {
    pb::SearchContactsRequest {
        name: name.into(),
        ..q()
    }
}

fn by_destination(d: &str) -> pb::SearchContactsRequest {
    pb::SearchContactsRequest {
        destination: d.into(),
        ..q()
    }
}

fn id_of(hit: &pb::SearchHit) -> i64 {
    match hit.contact.as_ref().and_then(|v| v.view.as_ref()) {
        Some(pb::contact_view::View::Contact(c)) => c.id,
        Some(pb::contact_view::View::Summary(s)) => s.id,
        None => 0,
    }
}

async fn ids(client: &Client, req: pb::SearchContactsRequest) -> Vec<i64> {
    client
        .search_all(req)
        .await
        .expect("search")
        .iter()
        .map(id_of)
        .collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn names_match_without_case_accents_or_exact_spelling_best_first() {
    let w = world("FR").await;
    let c = &w.crm.client;
    let chloe_d = add(c, "Chloé Dubois", &[], &[], vec![]).await;
    let chloe_m = add(c, "CHLOE MARTIN", &[], &[], vec![]).await;
    let zoe = add(c, "Zoë Müller", &[], &[], vec![]).await;
    let smith = add(c, "John Smith", &[], &[], vec![]).await;
    let exact = add(c, "Chloe", &[], &[], vec![]).await;

    assert_eq!(
        sorted(ids(c, by_name("chloé")).await),
        sorted(vec![chloe_d, chloe_m, exact])
    );
    assert_eq!(
        ids(c, by_name("chloe")).await[0],
        exact,
        "the equal name comes first"
    );
    assert_eq!(ids(c, by_name("MULLER")).await, vec![zoe]);
    assert_eq!(ids(c, by_name("müller")).await, vec![zoe]);
    assert_eq!(ids(c, by_name("bois")).await, vec![chloe_d], "substring");
    assert_eq!(ids(c, by_name("smiht")).await, vec![smith], "a typo");
    assert_eq!(
        ids(c, by_name("muler")).await,
        vec![zoe],
        "a missing letter"
    );
    assert!(ids(c, by_name("xyzzy")).await.is_empty());

    let page = c.search_contacts(by_name("Dubois")).await.expect("search");
    let fb = &page.hits[0].found_by[0];
    assert_eq!(fb.field(), pb::SearchField::Name);
    assert!(!fb.exact);
    assert_eq!(fb.value, "Chloé Dubois");
    let page = c.search_contacts(by_name("chloe")).await.expect("search");
    assert!(page.hits[0].found_by[0].exact);
}

#[tokio::test]
async fn destinations_match_phones_in_any_format_digit_runs_and_emails() {
    let w = world("FR").await;
    let c = &w.crm.client;
    let ann = add(
        c,
        "Ann",
        &[],
        &[],
        vec![phone("06 28 23 04 55"), email("Ann.Lee@Example.com")],
    )
    .await;
    let bob = add(
        c,
        "Bob",
        &[],
        &[],
        vec![phone("+44 20 7946 0018"), email("bob@example.org")],
    )
    .await;

    for format in [
        "+33628230455",
        "0628230455",
        "+33 6 28 23 04 55",
        "06-28-23-04-55",
        "0033 6 28 23 04 55",
        "(06) 28 23 04 55",
        "628230455",
    ] {
        let page = c
            .search_contacts(by_destination(format))
            .await
            .expect(format);
        assert_eq!(
            page.hits.iter().map(id_of).collect::<Vec<_>>(),
            vec![ann],
            "{format}"
        );
        let fb = &page.hits[0].found_by[0];
        assert_eq!(
            (fb.field(), fb.exact, fb.value.as_str()),
            (pb::SearchField::Phone, true, "+33628230455")
        );
    }
    // A foreign number with its country code.
    assert_eq!(ids(c, by_destination("+44 20 7946 0018")).await, vec![bob]);
    assert_eq!(ids(c, by_destination("0044 20 7946 0018")).await, vec![bob]);
    // A run of digits inside stored numbers.
    let page = c
        .search_contacts(by_destination("230455"))
        .await
        .expect("digits");
    assert_eq!(page.hits.iter().map(id_of).collect::<Vec<_>>(), vec![ann]);
    assert!(!page.hits[0].found_by[0].exact);
    assert_eq!(ids(c, by_destination("7946")).await, vec![bob]);
    // E-mails: whole (case-insensitive) or a prefix.
    let page = c
        .search_contacts(by_destination("ANN.LEE@example.COM"))
        .await
        .expect("email");
    assert_eq!(page.hits.iter().map(id_of).collect::<Vec<_>>(), vec![ann]);
    assert_eq!(page.hits[0].found_by[0].field(), pb::SearchField::Email);
    assert!(page.hits[0].found_by[0].exact);
    let page = c
        .search_contacts(by_destination("ann.l"))
        .await
        .expect("prefix");
    assert_eq!(page.hits.iter().map(id_of).collect::<Vec<_>>(), vec![ann]);
    assert!(!page.hits[0].found_by[0].exact);
    assert!(
        ids(c, by_destination("lee@example.com")).await.is_empty(),
        "prefix, not substring"
    );
}

#[tokio::test]
async fn attributes_messaging_labels_and_owner() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let other_owner = w.app.user(w.crm.domain, "Owner 2").await;
    let gold = add(
        c,
        "Gold",
        &["VIP"],
        &[("tier", "gold"), ("crm_id", "A1")],
        vec![messaging("telegram", "tg-1", "G")],
    )
    .await;
    let silver = add(
        c,
        "Silver",
        &["VIP", "Retail"],
        &[("tier", "silver")],
        vec![],
    )
    .await;
    let none = add(c, "Plain", &[], &[("crm_id", "A2")], vec![]).await;
    let owned = c
        .create_contact(pb::CreateContactRequest {
            display_name: "Owned".into(),
            owner_id: other_owner.0,
            attributes: vec![pb::Attribute {
                key: "tier".into(),
                value: "gold".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("create")
        .0
        .id;
    let attr = |k: &str, v: &str| pb::SearchContactsRequest {
        attributes: vec![pb::AttributeCondition {
            key: k.into(),
            value: v.into(),
        }],
        ..q()
    };
    assert_eq!(
        sorted(ids(c, attr("tier", "gold")).await),
        sorted(vec![gold, owned])
    );
    assert_eq!(
        sorted(ids(c, attr("tier", "*")).await),
        sorted(vec![gold, silver, owned])
    );
    assert!(
        ids(c, attr("tier", "GOLD")).await.is_empty(),
        "values match exactly"
    );
    let page = c
        .search_contacts(attr("crm_id", "A2"))
        .await
        .expect("search");
    assert_eq!(page.hits.iter().map(id_of).collect::<Vec<_>>(), vec![none]);
    assert_eq!(page.hits[0].found_by[0].value, "crm_id=A2");

    let m = pb::SearchContactsRequest {
        messaging: Some(pb::MessagingIdentity {
            protocol: "telegram".into(),
            external_user_id: "tg-1".into(),
        }),
        ..q()
    };
    assert_eq!(ids(c, m).await, vec![gold]);

    // Labels and owner filter the main conditions.
    let mut vip = attr("tier", "*");
    vip.labels = vec!["VIP".into()];
    assert_eq!(
        sorted(ids(c, vip.clone()).await),
        sorted(vec![gold, silver])
    );
    vip.labels.push("Retail".into());
    assert_eq!(ids(c, vip).await, vec![silver]);
    let mut by_owner = attr("tier", "gold");
    by_owner.owner_id = other_owner.0;
    assert_eq!(ids(c, by_owner).await, vec![owned]);
}

#[tokio::test]
async fn conditions_combine_with_and_or() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let a = add(
        c,
        "Ann Lee",
        &[],
        &[("tier", "gold")],
        vec![phone("07400 123456")],
    )
    .await;
    let b = add(c, "Ann Other", &[], &[("tier", "silver")], vec![]).await;
    let d = add(c, "Dan", &[], &[("tier", "gold")], vec![]).await;
    let both = pb::SearchContactsRequest {
        name: "ann".into(),
        attributes: vec![pb::AttributeCondition {
            key: "tier".into(),
            value: "gold".into(),
        }],
        ..q()
    };
    let page = c.search_contacts(both.clone()).await.expect("and");
    assert_eq!(page.hits.iter().map(id_of).collect::<Vec<_>>(), vec![a]);
    let fields: Vec<_> = page.hits[0].found_by.iter().map(|f| f.field()).collect();
    assert_eq!(
        fields,
        vec![pb::SearchField::Name, pb::SearchField::Attribute]
    );

    let any = pb::SearchContactsRequest {
        combine: pb::SearchCombine::Any as i32,
        ..both
    };
    assert_eq!(sorted(ids(c, any).await), sorted(vec![a, b, d]));

    let three = pb::SearchContactsRequest {
        name: "ann".into(),
        destination: "07400 123456".into(),
        attributes: vec![pb::AttributeCondition {
            key: "tier".into(),
            value: "*".into(),
        }],
        ..q()
    };
    assert_eq!(ids(c, three).await, vec![a]);
}

#[tokio::test]
async fn special_characters_are_matched_literally() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let pct = add(c, "50% Off Ltd", &[], &[], vec![]).await;
    let _fifty = add(c, "50 Offices", &[], &[], vec![]).await;
    let under = add(c, "a_b trading", &[], &[], vec![]).await;
    let _axb = add(c, "axb trading", &[], &[], vec![]).await;
    let slash = add(c, r"back\slash", &[], &[], vec![]).await;
    let quote = add(c, "O'Brien", &[], &[], vec![]).await;
    let star = add(c, "star* shop", &[], &[], vec![]).await;
    let _stars = add(c, "stars shop", &[], &[], vec![]).await;
    assert_eq!(ids(c, by_name("50%")).await, vec![pct]);
    assert_eq!(ids(c, by_name("a_b")).await, vec![under]);
    assert_eq!(ids(c, by_name(r"k\s")).await, vec![slash]);
    assert_eq!(ids(c, by_name("o'brien")).await, vec![quote]);
    assert_eq!(ids(c, by_name("r*")).await, vec![star]);
    assert!(
        ids(c, by_name("'; DROP TABLE contacts; --"))
            .await
            .is_empty()
    );
    assert_eq!(ids(c, by_name("o'b")).await, vec![quote]);
    // The table is still there.
    assert_eq!(ids(c, by_name("star*")).await, vec![star]);
}

/// The hits of every page of `req` at `page_size`, as (id, reasons).
async fn walk(
    client: &Client,
    req: &pb::SearchContactsRequest,
    page_size: i32,
) -> Vec<(i64, Vec<pb::FoundBy>)> {
    let hits = client
        .search_all(pb::SearchContactsRequest {
            page_size,
            ..req.clone()
        })
        .await
        .expect("search");
    hits.iter()
        .map(|h| (id_of(h), h.found_by.clone()))
        .collect()
}

#[tokio::test]
async fn a_name_alone_is_ranked_and_paged_like_any_other_query() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let mut by = std::collections::HashMap::new();
    for name in [
        "Joanna Lee",
        "Anna Lee",
        "Ana Lee",
        "Anna Leeds",
        "Anna Lee",
        "Anna Lee Jones",
        "Hanna Lee",
        "Anna Lee",
        "Bob Stone",
        "Lee Anna",
    ] {
        let id = add(c, name, &[], &[], vec![]).await;
        by.entry(name).or_insert_with(Vec::new).push(id);
    }
    // A name alone is searched band by band (equal, first words, prefix, substring, words);
    // with a second
    // condition that matches nobody (ANY) it runs as one general statement. Same hits, same
    // order, same reasons, at every page size.
    let alone = by_name("anna lee");
    let general = pb::SearchContactsRequest {
        attributes: vec![pb::AttributeCondition {
            key: "nobody".into(),
            value: "*".into(),
        }],
        combine: pb::SearchCombine::Any as i32,
        ..by_name("anna lee")
    };
    let expected = walk(c, &general, 100).await;
    let order: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        order.len(),
        8,
        "everything but Bob Stone and Ana Lee (anna has 4 letters: no typo)"
    );
    assert_eq!(
        order[..3],
        by["Anna Lee"][..],
        "equal names first, oldest first"
    );
    assert_eq!(
        order[3], by["Anna Lee Jones"][0],
        "the first words, exactly"
    );
    assert_eq!(order[4], by["Anna Leeds"][0], "then as a prefix");
    assert_eq!(
        sorted(order[5..7].to_vec()),
        sorted(vec![by["Joanna Lee"][0], by["Hanna Lee"][0]]),
        "substrings"
    );
    assert_eq!(
        order[7], by["Lee Anna"][0],
        "the words in another order last"
    );
    for size in [1, 2, 3, 100] {
        assert_eq!(walk(c, &alone, size).await, expected, "page size {size}");
    }
}

/// Names that land in every band of a name search, including words after punctuation, names
/// that repeat a word, a name that starts with punctuation, and a word that is both a first
/// and a later word.
const VARIED: &[&str] = &[
    "Anna Lee",
    "Anna Lee",
    "Anna Leeds",
    "Lee Anna",
    "Joanna Lee",
    "Hanna Lee",
    "Ana Lee",
    "Jean-Pierre Lee",
    "O'Brien Lee",
    "Lee Lee",
    "(Anna) Lee",
    "Annabel Smith",
    "John Smith",
    "Jane Smith-Jones",
    "Smithers Anna",
    "Anna Smith Smith",
    "Anna Smithson Smith",
    "Zoë Müller",
    "Muller Zoe",
    "Mullerova Anna",
    "Bob Stone",
    "Jon Snow",
    "John Snow",
    "Johnny Snow",
    "Smith",
    "Anna",
    "Pierre-Anna Smyth",
    "Joan Smiths",
    "Sm1th Anna",
    "a_b Lee",
    "Anna O'Brien",
    "Lee O'Brien-Smith",
    "O Brien",
];

/// Queries of every kind: first names, surnames, prefixes of words, fragments inside words,
/// several words, punctuation, typos, nothing.
const QUERIES: &[&str] = &[
    "anna",
    "lee",
    "smith",
    "smi",
    "ann",
    "muller",
    "mul",
    "smiht",
    "jonh",
    "anna lee",
    "lee anna",
    "ith",
    "nna",
    "lee-",
    "o'b",
    "brien",
    "pierre",
    "annna",
    "xyzzy",
    "zoe",
    "an",
    "sm",
    "a_b",
    "smiths",
    "o'brien",
    "o'brien-smith",
    "smith-jones",
    "jean-p",
    "o brien",
    "lee o'",
    "o'brein",
    "(anna)",
    "a+b",
    "[lee]",
    "^lee$",
    ".*",
    "lee\\",
    "lee?",
];

#[tokio::test]
async fn a_name_alone_matches_as_before_and_pages_like_the_combined_statement() {
    use diesel_async::RunQueryDsl;
    let w = world("GB").await;
    let c = &w.crm.client;
    for name in VARIED.iter().copied() {
        add(c, name, &[], &[], vec![]).await;
    }
    let mut db = w.app.db().await;
    for q in QUERIES.iter().copied() {
        let alone = by_name(q);
        let general = pb::SearchContactsRequest {
            attributes: vec![pb::AttributeCondition {
                key: "nobody".into(),
                value: "*".into(),
            }],
            combine: pb::SearchCombine::Any as i32,
            ..by_name(q)
        };
        let expected = walk(c, &general, 100).await;
        for size in [1, 2, 5, 100] {
            assert_eq!(
                walk(c, &alone, size).await,
                expected,
                "{q:?}, page size {size}"
            );
        }
        let mut found: Vec<i64> = expected.iter().map(|(id, _)| *id).collect();
        found.sort_unstable();
        let before = found.len();
        found.dedup();
        assert_eq!(found.len(), before, "{q:?}: a contact twice");
        // The same contacts as the rule says: the query is a substring of the name, or (a
        // typo-tolerant query) each of its words matches a word of the name exactly, within
        // its typos, or (the last) as a prefix.
        let typo = client_info_server::domain::search::typo_tolerant(q);
        let like = client_info_server::domain::search::escape_like(q);
        let mut matching: Vec<i64> = diesel::sql_query(
            "SELECT id, name_search LIKE '%' || lower(immutable_unaccent($2)) || '%' ESCAPE '\\' AS substring, \
                    name_words(name_search) AS words, name_words(lower(immutable_unaccent($3))) AS query \
             FROM contacts WHERE domain_id = $1",
        )
        .bind::<diesel::sql_types::BigInt, _>(w.crm.domain.0)
        .bind::<diesel::sql_types::Text, _>(like)
        .bind::<diesel::sql_types::Text, _>(q)
        .load::<Named>(&mut db)
        .await
        .expect("names")
        .into_iter()
        .filter(|r| r.substring || (typo && words_rule(&r.query, &r.words)))
        .map(|r| r.id)
        .collect();
        matching.sort_unstable();
        assert_eq!(found, matching, "{q:?}");
    }
}

/// A contact's name as the oracle of name search reads it.
#[derive(diesel::QueryableByName)]
struct Named {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    substring: bool,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    words: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    query: Vec<String>,
}

/// The words rule, written independently of the server's statements: every query word is a
/// word of the name, is within the typos that word forgives (optimal string alignment
/// distance; 1 from 5 characters, 2 from 9), or (the last) starts one.
fn words_rule(query: &[String], words: &[String]) -> bool {
    !query.is_empty()
        && query.iter().enumerate().all(|(i, q)| {
            words.iter().any(|w| {
                let allowed = match w.chars().count() {
                    n if n >= 9 => 2,
                    n if n >= 5 => 1,
                    _ => 0,
                };
                strsim::osa_distance(q, w) <= allowed
                    || (i + 1 == query.len() && w.starts_with(q.as_str()))
            })
        })
}

/// The words of a contact in the word index.
async fn words_of(db: &mut diesel_async::AsyncPgConnection, contact: i64) -> Vec<String> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Word {
        #[diesel(sql_type = diesel::sql_types::Text)]
        word: String,
    }
    diesel::sql_query(
        "SELECT word::text AS word FROM contact_name_words WHERE contact_id = $1 ORDER BY 1",
    )
    .bind::<diesel::sql_types::BigInt, _>(contact)
    .load::<Word>(db)
    .await
    .expect("words")
    .into_iter()
    .map(|r| r.word)
    .collect()
}

#[tokio::test]
async fn renamed_and_deleted_contacts_leave_the_name_index() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let ann = add(c, "Ann Quill", &[], &[], vec![]).await;
    let bob = add(c, "Bob Quill", &[], &[], vec![]).await;
    assert_eq!(
        sorted(ids(c, by_name("quill")).await),
        sorted(vec![ann, bob])
    );
    c.update_contact(pb::UpdateContactRequest {
        contact_id: ann,
        expected_version: 1,
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
        display_name: "Ann Zebedee-Nuttall".into(),
        ..Default::default()
    })
    .await
    .expect("rename");
    assert_eq!(ids(c, by_name("quill")).await, vec![bob]);
    assert_eq!(ids(c, by_name("nuttall")).await, vec![ann], "a later word");
    assert_eq!(ids(c, by_name("zebedee")).await, vec![ann]);
    assert_eq!(
        ids(c, by_name("zebedea")).await,
        vec![ann],
        "a typo of a new word"
    );
    assert_eq!(
        ids(c, by_name("nutall")).await,
        vec![ann],
        "a typo of a new later word"
    );
    c.delete_contact(bob, 0).await.expect("delete");
    assert!(ids(c, by_name("quill")).await.is_empty());
    let mut db = w.app.db().await;
    let left = words_of(&mut db, bob).await;
    assert!(left.is_empty(), "the deleted contact's words: {left:?}");
    let kept = words_of(&mut db, ann).await;
    assert_eq!(kept, ["ann", "nuttall", "zebedee"]);
}

#[tokio::test]
async fn pages_cover_every_hit_once_in_a_stable_order() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let mut created = Vec::new();
    for i in 0..45 {
        created.push(add(c, &format!("Pager {i:02}"), &[], &[("batch", "p")], vec![]).await);
    }
    for req in [
        by_name("pager"),
        pb::SearchContactsRequest {
            attributes: vec![pb::AttributeCondition {
                key: "batch".into(),
                value: "p".into(),
            }],
            ..q()
        },
    ] {
        let mut req = pb::SearchContactsRequest {
            page_size: 10,
            ..req
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = c.search_contacts(req.clone()).await.expect("page");
            pages += 1;
            assert!(page.hits.len() <= 10);
            seen.extend(page.hits.iter().map(id_of));
            assert_eq!(page.has_more, !page.next_page_token.is_empty());
            if !page.has_more {
                break;
            }
            req.page_token = page.next_page_token;
        }
        assert_eq!(pages, 5);
        assert_eq!(seen.len(), 45, "no duplicates or gaps");
        assert_eq!(sorted(seen.clone()), sorted(created.clone()));
        // The same query again gives the same order.
        let again: Vec<i64> = ids(
            c,
            pb::SearchContactsRequest {
                page_size: 7,
                page_token: String::new(),
                ..req.clone()
            },
        )
        .await;
        assert_eq!(again, seen);
    }
    // A token from another query, or a forged one.
    let first = c
        .search_contacts(pb::SearchContactsRequest {
            page_size: 10,
            ..by_name("pager")
        })
        .await
        .expect("p1");
    let other = pb::SearchContactsRequest {
        page_token: first.next_page_token.clone(),
        ..by_name("page")
    };
    expect_invalid(c.search_contacts(other).await, "page_token");
    let forged = pb::SearchContactsRequest {
        page_token: "eyJhbGciOiJIUzI1NiJ9.e30.x".into(),
        ..by_name("pager")
    };
    expect_invalid(c.search_contacts(forged).await, "page_token");
    let mut tampered = first.next_page_token.clone();
    tampered.insert(tampered.len() / 2, 'A');
    expect_invalid(
        c.search_contacts(pb::SearchContactsRequest {
            page_token: tampered,
            ..by_name("pager")
        })
        .await,
        "page_token",
    );
    // A smaller page size with the same query continues.
    let cont = c
        .search_contacts(pb::SearchContactsRequest {
            page_size: 5,
            page_token: first.next_page_token,
            ..by_name("pager")
        })
        .await
        .expect("continue");
    assert_eq!(cont.hits.len(), 5);
}

#[tokio::test]
async fn agents_search_only_in_an_accepted_interaction_and_see_summaries() {
    let w = world("GB").await;
    let c = &w.crm.client;
    let ann = add(c, "Ann Lee", &["VIP"], &[], vec![phone("07400 123456")]).await;
    let d = w.crm.domain;
    let routing = w
        .app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = w
        .app
        .actor(d, "Agent", &[Permission::InteractionsHandle])
        .await;
    let other = w
        .app
        .actor(d, "Other", &[Permission::InteractionsHandle])
        .await;
    let reader = w.app.actor(d, "Reader", &[Permission::ContactsRead]).await;
    let nobody = w.app.actor(d, "Nobody", &[]).await;

    expect_code(
        agent.client.search_contacts(by_name("ann")).await,
        Code::PermissionDenied,
    );
    expect_code(
        nobody.client.search_contacts(by_name("ann")).await,
        Code::PermissionDenied,
    );
    routing
        .client
        .offer_interaction(call("i1", "07400 999999", agent.user.0))
        .await
        .expect("offer");
    let in_call = pb::SearchContactsRequest {
        interaction_id: "i1".into(),
        ..by_name("ann")
    };
    expect_code(
        agent.client.search_contacts(in_call.clone()).await,
        Code::FailedPrecondition,
    );
    routing
        .client
        .accept_interaction("i1", agent.user.0)
        .await
        .expect("accept");
    let page = agent
        .client
        .search_contacts(in_call.clone())
        .await
        .expect("agent searches");
    match page.hits[0].contact.as_ref().and_then(|v| v.view.as_ref()) {
        Some(pb::contact_view::View::Summary(s)) => {
            assert_eq!((s.id, s.display_name.as_str()), (ann, "Ann Lee"));
            assert_eq!(s.labels, vec!["VIP"]);
        }
        other => panic!("expected a summary, got {other:?}"),
    }
    expect_code(
        other.client.search_contacts(in_call.clone()).await,
        Code::NotFound,
    );
    routing.client.close_interaction("i1").await.expect("close");
    expect_code(
        agent.client.search_contacts(in_call).await,
        Code::FailedPrecondition,
    );
    // contacts.read searches anywhere, with full cards.
    let page = reader
        .client
        .search_contacts(by_name("ann"))
        .await
        .expect("reader");
    assert!(matches!(
        page.hits[0].contact.as_ref().and_then(|v| v.view.as_ref()),
        Some(pb::contact_view::View::Contact(_))
    ));
}

#[tokio::test]
async fn search_never_crosses_domains() {
    let w = world("GB").await;
    add(
        &w.crm.client,
        "Ann Lee",
        &["VIP"],
        &[("tier", "gold")],
        vec![phone("07400 123456"), email("ann@example.com")],
    )
    .await;
    let other = w.app.domain("other", "GB").await;
    let crm_b = w.app.actor(other, "CRM B", ALL).await;
    for req in [
        by_name("ann"),
        by_destination("07400 123456"),
        by_destination("123456"),
        by_destination("ann@"),
        pb::SearchContactsRequest {
            attributes: vec![pb::AttributeCondition {
                key: "tier".into(),
                value: "*".into(),
            }],
            ..q()
        },
    ] {
        assert!(ids(&crm_b.client, req).await.is_empty());
    }
    assert!(
        crm_b
            .client
            .list_labels("", 0)
            .await
            .expect("labels")
            .is_empty()
    );
}

#[tokio::test]
async fn bad_searches_are_invalid_argument() {
    let w = world("GB").await;
    let c = &w.crm.client;
    expect_invalid(c.search_contacts(q()).await, "name");
    expect_invalid(c.search_contacts(by_name("a")).await, "name");
    expect_invalid(c.search_contacts(by_name(&"a".repeat(201))).await, "name");
    expect_invalid(c.search_contacts(by_destination("12")).await, "destination");
    expect_invalid(
        c.search_contacts(by_destination(&"1".repeat(300))).await,
        "destination",
    );
    let attr = |k: &str, v: &str| pb::SearchContactsRequest {
        attributes: vec![pb::AttributeCondition {
            key: k.into(),
            value: v.into(),
        }],
        ..q()
    };
    expect_invalid(
        c.search_contacts(attr("a-b", "x")).await,
        "attributes[0].key",
    );
    expect_invalid(
        c.search_contacts(attr("k", "")).await,
        "attributes[0].value",
    );
    expect_invalid(
        c.search_contacts(pb::SearchContactsRequest {
            page_size: 101,
            ..by_name("ann")
        })
        .await,
        "page_size",
    );
    expect_invalid(
        c.search_contacts(pb::SearchContactsRequest {
            page_size: -1,
            ..by_name("ann")
        })
        .await,
        "page_size",
    );
    expect_invalid(
        c.search_contacts(pb::SearchContactsRequest {
            combine: 9,
            ..by_name("ann")
        })
        .await,
        "combine",
    );
    expect_invalid(
        c.search_contacts(pb::SearchContactsRequest {
            owner_id: -3,
            ..by_name("ann")
        })
        .await,
        "owner_id",
    );
    expect_invalid(
        c.search_contacts(pb::SearchContactsRequest {
            labels: vec![String::new()],
            ..by_name("ann")
        })
        .await,
        "labels[0]",
    );
    let m = pb::SearchContactsRequest {
        messaging: Some(pb::MessagingIdentity {
            protocol: "bad proto".into(),
            external_user_id: "x".into(),
        }),
        ..q()
    };
    expect_invalid(c.search_contacts(m).await, "messaging.protocol");
    expect_invalid(c.list_labels("x".repeat(65), 0).await, "prefix");
}

#[tokio::test]
async fn labels_autocomplete_by_use_count() {
    let w = world("GB").await;
    let c = &w.crm.client;
    for _ in 0..3 {
        add(c, "A", &["Vendor"], &[], vec![]).await;
    }
    add(c, "B", &["VIP", "Vendor"], &[], vec![]).await;
    add(c, "C", &["VIP"], &[], vec![]).await;
    add(c, "D", &["Retail", "50%_off"], &[], vec![]).await;
    let labels = c.list_labels("v", 0).await.expect("labels");
    let got: Vec<_> = labels
        .iter()
        .map(|l| (l.label.as_str(), l.contact_count))
        .collect();
    assert_eq!(got, vec![("Vendor", 4), ("VIP", 2)]);
    assert_eq!(c.list_labels("VI", 0).await.expect("labels").len(), 1);
    assert_eq!(c.list_labels("", 2).await.expect("labels").len(), 2);
    assert_eq!(
        c.list_labels("50%", 0).await.expect("labels")[0].label,
        "50%_off"
    );
    assert!(
        c.list_labels("5_", 0).await.expect("labels").is_empty(),
        "_ is literal"
    );
    let agent = w
        .app
        .actor(w.crm.domain, "Agent", &[Permission::InteractionsHandle])
        .await;
    assert_eq!(
        agent.client.list_labels("v", 0).await.expect("agent").len(),
        2
    );
    let nobody = w.app.actor(w.crm.domain, "Nobody", &[]).await;
    expect_code(
        nobody.client.list_labels("v", 0).await,
        Code::PermissionDenied,
    );
}
