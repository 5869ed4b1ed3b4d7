//! FindDuplicates: what counts as a duplicate, why each group says it is one, the order,
//! paging, filters and bad input.

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::{Client, pb};
use client_info_tests::{ALL, TestApp, expect_invalid};

async fn contact(
    client: &Client,
    name: &str,
    labels: &[&str],
    attributes: &[(&str, &str)],
    comms: Vec<pb::CommunicationInput>,
) -> pb::Contact {
    client
        .create_contact(pb::CreateContactRequest {
            display_name: name.into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            attributes: attributes
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
}

fn ids(g: &pb::DuplicateGroup) -> Vec<i64> {
    g.contacts.iter().map(|c| c.id).collect()
}

fn why(g: &pb::DuplicateGroup) -> Vec<(pb::SearchField, bool, String)> {
    g.found_by
        .iter()
        .map(|f| (f.field(), f.exact, f.value.clone()))
        .collect()
}

#[tokio::test]
async fn groups_say_why_come_strongest_first_and_page_by_cursor() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let c = &crm.client;
    let p1 = contact(c, "Paul Smith", &["VIP"], &[], vec![phone("07400 600600")]).await;
    let p2 = contact(
        c,
        "Paul Smith",
        &["VIP"],
        &[],
        vec![phone("+44 7400 600600")],
    )
    .await;
    let e1 = contact(c, "Eve", &[], &[], vec![email("Same@Example.com")]).await;
    let e2 = contact(c, "Eva Green", &[], &[], vec![email("same@example.com")]).await;
    let w1 = contact(
        c,
        "Wanda",
        &[],
        &[],
        vec![messaging("whatsapp", "447400700700", "W")],
    )
    .await;
    let w2 = contact(c, "Wanda M", &[], &[], vec![phone("07400 700700")]).await;
    let n1 = contact(c, "Jonathan Smyth", &[], &[("crm_id", "CRM-9")], vec![]).await;
    let n2 = contact(c, "Jonathan Smith", &[], &[("crm_id", "CRM-9")], vec![]).await;
    // Shares the attribute, not the name.
    let _n3 = contact(
        c,
        "Completely Different",
        &[],
        &[("crm_id", "CRM-9")],
        vec![],
    )
    .await;
    // A value too common to say who is who.
    for _ in 0..21 {
        contact(c, "Gold Member", &[], &[("tier", "gold")], vec![]).await;
    }
    let _alone = contact(
        c,
        "Alone",
        &[],
        &[("crm_id", "CRM-1")],
        vec![phone("07400 800800")],
    )
    .await;

    let page = c
        .find_duplicates(pb::FindDuplicatesRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("find");
    assert!(page.next_page_token.is_empty(), "one page holds it all");
    let groups = &page.groups;
    assert_eq!(groups.len(), 4, "{groups:#?}");
    use pb::SearchField as F;
    assert_eq!(ids(&groups[0]), [e1.id, e2.id]);
    assert_eq!(
        why(&groups[0])[0],
        (F::Email, true, "same@example.com".into())
    );
    assert_eq!(ids(&groups[1]), [w1.id, w2.id]);
    assert_eq!(
        why(&groups[1])[..2],
        [
            (F::Messaging, true, "+447400700700".into()),
            (F::Phone, true, "+447400700700".into())
        ]
    );
    assert_eq!(ids(&groups[2]), [p1.id, p2.id]);
    assert_eq!(
        why(&groups[2]),
        [
            (F::Phone, true, "+447400600600".into()),
            (F::Name, true, "Paul Smith".into())
        ],
        "the same name too"
    );
    assert_eq!(ids(&groups[3]), [n1.id, n2.id]);
    assert_eq!(
        why(&groups[3]),
        [
            (F::Attribute, true, "crm_id=CRM-9".into()),
            (F::Name, false, "Jonathan Smyth".into())
        ]
    );
    for g in groups {
        assert_eq!(g.contact_count, 2);
        assert!(g.score > 0.5 && g.score <= 1.0, "{g:?}");
    }
    assert!(
        groups[2].score > 0.85,
        "a phone and a name score above a phone alone"
    );
    assert!(groups[3].score < groups[0].score);

    // One group per page, by cursor: the same groups in the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .find_duplicates(pb::FindDuplicatesRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page");
        assert!(page.groups.len() <= 1);
        paged.extend(page.groups);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, page.groups);
    assert_eq!(
        c.all_duplicates(pb::FindDuplicatesRequest::default())
            .await
            .expect("all"),
        page.groups
    );

    // Filters compare only the contacts they keep.
    let vip = c
        .all_duplicates(pb::FindDuplicatesRequest {
            labels: vec!["VIP".into()],
            ..Default::default()
        })
        .await
        .expect("vip");
    assert_eq!(vip.len(), 1);
    assert_eq!(ids(&vip[0]), [p1.id, p2.id]);
    let someone = app.user(d, "Someone").await;
    assert!(
        c.all_duplicates(pb::FindDuplicatesRequest {
            owner_id: someone.0,
            ..Default::default()
        })
        .await
        .expect("owner")
        .is_empty()
    );

    // A merged group is no longer a duplicate.
    c.merge_into(p1.id, p1.version)
        .contact(p2.id, p2.version)
        .await
        .expect("merge");
    let after = c
        .all_duplicates(pb::FindDuplicatesRequest::default())
        .await
        .expect("after");
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|g| !ids(g).contains(&p2.id)));
}

#[tokio::test]
async fn large_shared_values_are_counted_and_listed_in_part() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let mut made = Vec::new();
    for i in 0..14 {
        let c = contact(
            &crm.client,
            &format!("Office {i}"),
            &[],
            &[],
            vec![phone("020 7946 0000")],
        )
        .await;
        made.push(c.id);
    }
    let groups = crm
        .client
        .all_duplicates(pb::FindDuplicatesRequest::default())
        .await
        .expect("find");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].contact_count, 14);
    assert_eq!(ids(&groups[0]), made[..10]);
    assert!(
        groups[0].score < 0.5,
        "a switchboard, not one client: {}",
        groups[0].score
    );
}

#[tokio::test]
async fn bad_find_requests_name_the_field() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let c = &crm.client;
    let find = |r: pb::FindDuplicatesRequest| c.find_duplicates(r);
    expect_invalid(
        find(pb::FindDuplicatesRequest {
            page_size: 101,
            ..Default::default()
        })
        .await,
        "page_size",
    );
    expect_invalid(
        find(pb::FindDuplicatesRequest {
            owner_id: -1,
            ..Default::default()
        })
        .await,
        "owner_id",
    );
    expect_invalid(
        find(pb::FindDuplicatesRequest {
            labels: vec![String::new()],
            ..Default::default()
        })
        .await,
        "labels[0]",
    );
    expect_invalid(
        find(pb::FindDuplicatesRequest {
            page_token: "forged".into(),
            ..Default::default()
        })
        .await,
        "page_token",
    );
    // A token of another query (other filters) is refused too.
    for i in 0..3 {
        contact(
            c,
            &format!("Twin {i}"),
            &[],
            &[],
            vec![phone("07400 900900")],
        )
        .await;
    }
    let page = find(pb::FindDuplicatesRequest {
        page_size: 1,
        ..Default::default()
    })
    .await
    .expect("first page");
    assert!(!page.next_page_token.is_empty());
    expect_invalid(
        find(pb::FindDuplicatesRequest {
            page_size: 1,
            labels: vec!["VIP".into()],
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await,
        "page_token",
    );
    let search = c
        .search_contacts(pb::SearchContactsRequest {
            name: "twin".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(!search.next_page_token.is_empty());
    expect_invalid(
        find(pb::FindDuplicatesRequest {
            page_token: search.next_page_token,
            ..Default::default()
        })
        .await,
        "page_token",
    );
}

#[tokio::test]
async fn groups_are_whole_and_listed_once_across_slices_and_pages() {
    use diesel_async::SimpleAsyncConnection as _;
    let app = TestApp::start().await;
    let d = app.domain("big", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    // 45,000 e-mails (more than four slices of `duplicates::SLICE`, 10,000): 45 pairs, and a
    // triple across the first slice's end (its 10,000th entry falls inside the triple).
    let mut conn = app.db().await;
    conn.batch_execute(&format!(
        "INSERT INTO contacts (domain_id, display_name, owner_id, created_by, updated_by)
           SELECT {d}, 'Contact ' || g, {u}, {u}, {u} FROM generate_series(1, 45000) g;
         INSERT INTO contact_emails (domain_id, contact_id, address, normalized)
           SELECT domain_id, id, e, e FROM (
             SELECT domain_id, id, 'u' || lpad((CASE WHEN n % 1000 = 501 THEN n - 1
                                                     WHEN n IN (10000, 10001) THEN 9999
                                                     ELSE n END)::text, 6, '0') || '@x.com' AS e
             FROM (SELECT domain_id, id, row_number() OVER (ORDER BY id) AS n
                   FROM contacts WHERE domain_id = {d}) c) x;
         ANALYZE",
        d = d.0,
        u = crm.user.0
    ))
    .await
    .expect("seed");
    let groups = crm
        .client
        .all_duplicates(pb::FindDuplicatesRequest {
            page_size: 7,
            ..Default::default()
        })
        .await
        .expect("all pages");
    let mut values: Vec<String> = groups.iter().map(|g| g.found_by[0].value.clone()).collect();
    assert_eq!(values.len(), 46, "{values:?}");
    values.dedup();
    assert_eq!(values.len(), 46, "each group once");
    let triple = groups
        .iter()
        .find(|g| g.found_by[0].value == "u009999@x.com")
        .expect("the triple");
    assert_eq!(triple.contact_count, 3);
    assert_eq!(triple.contacts.len(), 3);
    assert!(groups.iter().filter(|g| g.contact_count == 2).count() == 45);
}
