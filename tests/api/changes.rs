//! The contact change feed (WatchContactChanges) and its listing (ListContacts): every kind
//! of change, once and in commit order, through random disconnects, two servers and a restart;
//! filters and field masks; a full resync; a slow consumer; bad input.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client_info_sdk::contacts::{messaging, phone};
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::watch::{ChangeFilter, ChangeItem, WatchOptions};
use client_info_sdk::{Client, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp, expect_code, expect_invalid, metric, scrape};
use diesel_async::RunQueryDsl as _;
use futures_util::StreamExt as _;
use rand::Rng as _;
use tonic::Code;

use pb::ContactChangeKind as K;

/// Every change position stored for the domain, in order.
async fn stored_positions(app: &TestApp, domain: i64) -> Vec<i64> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        sequence: i64,
    }
    let mut conn = app.db().await;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT sequence FROM contact_changes WHERE domain_id = {domain} ORDER BY sequence"
    ))
    .load(&mut conn)
    .await
    .expect("changes");
    rows.into_iter().map(|r| r.sequence).collect()
}

type Seen = Arc<Mutex<Vec<(i64, i32)>>>;

type Feed = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<ChangeItem, client_info_sdk::SdkError>> + Send>,
>;

fn feed(client: &Client, filter: ChangeFilter, resume_after: i64) -> Feed {
    Box::pin(client.watch_contact_changes(
        filter,
        WatchOptions {
            resume_after,
            ..WatchOptions::default()
        },
    ))
}

async fn next(feed: &mut Feed) -> ChangeItem {
    tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("ok")
}

/// A consumer that drops its stream after a random number of changes and resumes after the
/// last position it got, on a random one of `urls`, until `done`.
async fn consumer(
    urls: Vec<String>,
    token: String,
    seen: Seen,
    done: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = 0i64;
    let mut first = true;
    while !*done.borrow() {
        let (url, take) = {
            let mut rng = rand::rng();
            (
                urls[rng.random_range(0..urls.len())].clone(),
                rng.random_range(1..8),
            )
        };
        let Ok(client) = Client::builder(url).token(&token).connect().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let options = WatchOptions {
            resume_after: last,
            heartbeats: true,
            ..WatchOptions::default()
        };
        let mut stream = Box::pin(client.watch_contact_changes(ChangeFilter::default(), options));
        let mut taken = 0;
        while taken < take && !*done.borrow() {
            match tokio::time::timeout(Duration::from_millis(700), stream.next()).await {
                Ok(Some(Ok(ChangeItem::Started(p)))) => {
                    if first {
                        last = p;
                        first = false;
                    }
                    assert_eq!(p, last, "the feed starts where it was asked to");
                }
                Ok(Some(Ok(ChangeItem::Change(c)))) => {
                    assert!(c.position > last, "{} after {last}", c.position);
                    last = c.position;
                    seen.lock().expect("lock").push((c.position, c.kind));
                    taken += 1;
                }
                Ok(Some(Ok(ChangeItem::Heartbeat(p)))) => last = last.max(p),
                Ok(Some(Err(e))) => panic!("feed: {e:?}"),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_reaches_the_feed_once_in_order_across_servers_and_a_restart() {
    let mut a = TestApp::start().await;
    let b = TestApp::start_on(&a.db_name).await;
    let d = a.domain("acme", "GB").await;
    a.set_identification(d, false, 9).await;
    let crm = a.actor(d, "CRM", ALL).await;
    let routing = a
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = a.actor(d, "Alice", &[Permission::InteractionsHandle]).await;
    let feed = a
        .actor(d, "Warehouse", &[Permission::ContactsChanges])
        .await;

    let seen: Seen = Arc::default();
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(consumer(
        vec![a.url.clone(), b.url.clone()],
        feed.token.clone(),
        seen.clone(),
        done.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Every kind of change.
    let ann = crm
        .client
        .new_contact("Ann Lee")
        .phone("07400 111111")
        .label("VIP")
        .await
        .expect("create")
        .contact;
    let ann = crm
        .client
        .edit_contact(ann.id, ann.version)
        .description("Prefers mornings")
        .await
        .expect("update");
    let ann = crm
        .client
        .link_communication(ann.id, phone("07400 222222"))
        .await
        .expect("link");
    let second = ann
        .phones
        .iter()
        .find(|p| p.e164.ends_with("222222"))
        .expect("phone")
        .id;
    let ann = crm
        .client
        .unlink_communication(
            ann.id,
            ann.version,
            pb::unlink_communication_request::Communication::PhoneId(second),
        )
        .await
        .expect("unlink");
    let bob = crm
        .client
        .new_contact("Bob Chat")
        .messaging("telegram", "tg-1", "Bob")
        .await
        .expect("bob")
        .contact;
    let cara = crm.client.new_contact("Cara").await.expect("cara").contact;
    // A chat from Bob's identity, answered, bound to Cara with the identity moved: bound and
    // relinked.
    routing
        .client
        .offer_interaction(chat("chat-1", "telegram", "tg-1", "Bob", agent.user.0))
        .await
        .expect("offer");
    routing
        .client
        .accept_interaction("chat-1", agent.user.0)
        .await
        .expect("accept");
    agent
        .client
        .select_contact("chat-1", cara.id)
        .relink_channel(true)
        .await
        .expect("select");
    agent.client.unbind_contact("chat-1").await.expect("unbind");
    // A call from Ann's number, bound when offered (autolink on).
    a.set_identification(d, true, 9).await;
    a.restart_server().await;
    routing
        .client
        .offer_interaction(call("call-1", "07400 111111", agent.user.0))
        .await
        .expect("offer with autolink");
    // Merge and undo.
    let cara = crm.client.get_contact(cara.id).await.expect("cara");
    let bob = crm.client.get_contact(bob.id).await.expect("bob");
    let merged = crm
        .client
        .merge_into(cara.id, cara.version)
        .contact(bob.id, bob.version)
        .await
        .expect("merge");
    crm.client
        .unmerge_contacts(merged.merge_id, true)
        .await
        .expect("unmerge");
    // An import, and a delete.
    let records: Vec<pb::ImportContactsRequest> = (0..60)
        .map(|i| pb::ImportContactsRequest {
            display_name: format!("Imported {i}"),
            ..Default::default()
        })
        .collect();
    let imported = crm
        .client
        .import_contacts(tokio_stream::iter(records))
        .await
        .expect("import");
    assert_eq!(imported.imported, 60);
    // Each imported contact's position is its change's, set as it was inserted.
    {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = a.db().await;
        let matched: Count = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM contacts c JOIN contact_changes ch \
             ON ch.domain_id = c.domain_id AND ch.contact_id = c.id \
             AND ch.sequence = c.change_position \
             WHERE c.domain_id = {} AND c.display_name LIKE 'Imported %'",
            d.0
        ))
        .get_result(&mut conn)
        .await
        .expect("positions");
        assert_eq!(matched.n, 60);
    }
    let ann = crm.client.get_contact(ann.id).await.expect("ann");
    crm.client
        .delete_contact(ann.id, ann.version)
        .await
        .expect("delete");

    // Everything stored arrives, once, in order.
    let stored = stored_positions(&a, d.0).await;
    let started = std::time::Instant::now();
    loop {
        let got: Vec<i64> = seen.lock().expect("lock").iter().map(|s| s.0).collect();
        if got.len() >= stored.len() {
            assert_eq!(got, stored, "every change once, in order");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {} changes arrived",
            got.len(),
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = done_tx.send(true);
    watcher.await.expect("consumer");
    let kinds: BTreeSet<i32> = seen.lock().expect("lock").iter().map(|s| s.1).collect();
    for kind in [
        K::Created,
        K::Updated,
        K::Deleted,
        K::Merged,
        K::Unmerged,
        K::CommunicationLinked,
        K::CommunicationUnlinked,
        K::ChannelRelinked,
        K::InteractionBound,
        K::InteractionUnbound,
    ] {
        assert!(kinds.contains(&(kind as i32)), "{kind:?} reached the feed");
    }
}

#[tokio::test]
async fn filters_masks_a_full_resync_and_refusals() {
    let app = TestApp::start_with(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let reader = app.actor(d, "Reader", &[Permission::ContactsRead]).await;
    for i in 0..5 {
        crm.client
            .new_contact(format!("Early {i}"))
            .label(if i % 2 == 0 { "VIP" } else { "Lead" })
            .await
            .expect("create");
    }

    // A full resync: the listing in change order, then the feed after its position.
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut resume_after = None;
    loop {
        let page = crm
            .client
            .list_contacts(&ChangeFilter::default(), 2, token.clone())
            .await
            .expect("list");
        assert!(*resume_after.get_or_insert(page.resume_after) == page.resume_after);
        listed.extend(page.contacts.iter().map(|c| c.change_position));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed.len(), 5);
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "in change order");
    let resume_after = resume_after.unwrap_or_default();
    assert_eq!(resume_after, *listed.last().unwrap_or(&0));
    let vip = crm
        .client
        .list_contacts(
            &ChangeFilter {
                labels: vec!["VIP".into()],
                ..ChangeFilter::default()
            },
            0,
            "",
        )
        .await
        .expect("list VIPs");
    assert_eq!(vip.contacts.len(), 3);
    expect_invalid(
        crm.client
            .list_contacts(
                &ChangeFilter {
                    labels: vec!["Lead".into()],
                    ..ChangeFilter::default()
                },
                2,
                crm.client
                    .list_contacts(&ChangeFilter::default(), 2, "")
                    .await
                    .expect("list")
                    .next_page_token,
            )
            .await,
        "page_token",
    );

    // Only VIPs, only their names.
    let filter = ChangeFilter {
        fields: vec!["display_name".into()],
        labels: vec!["VIP".into()],
        owner_id: 0,
    };
    let mut vips = feed(&crm.client, filter, resume_after);
    let mut everything = feed(&crm.client, ChangeFilter::default(), resume_after);
    crm.client
        .new_contact("Later Lead")
        .label("Lead")
        .phone("07400 333333")
        .await
        .expect("lead");
    crm.client
        .new_contact("Later VIP")
        .label("VIP")
        .phone("07400 444444")
        .await
        .expect("vip");
    assert_eq!(next(&mut vips).await, ChangeItem::Started(resume_after));
    let ChangeItem::Change(vip_change) = next(&mut vips).await else {
        panic!("a change")
    };
    let card = vip_change.contact.as_ref().expect("card");
    assert_eq!(card.display_name, "Later VIP");
    assert!(
        card.phones.is_empty() && card.labels.is_empty(),
        "only the name"
    );
    assert_eq!(vip_change.kind, K::Created as i32);
    assert_eq!(
        vip_change.actor.as_ref().map(|u| u.name.as_str()),
        Some("CRM")
    );
    assert_eq!(vip_change.version, card.version);
    assert_eq!(
        next(&mut everything).await,
        ChangeItem::Started(resume_after)
    );
    let ChangeItem::Change(first) = next(&mut everything).await else {
        panic!("a change")
    };
    assert_eq!(
        first.contact.as_ref().map(|c| c.display_name.as_str()),
        Some("Later Lead")
    );
    assert_eq!(first.contact.as_ref().map(|c| c.phones.len()), Some(1));
    // The counter moves once the stream has handed a change on, which may be just after the
    // client read it: wait for it (up to 5 s) rather than race it.
    let mut s = scrape(app.metrics_addr()).await;
    for _ in 0..50 {
        if metric(&s, "client_info_changes_delivered_total") >= 3.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        s = scrape(app.metrics_addr()).await;
    }
    assert!(
        metric(&s, "client_info_changes_delivered_total") >= 3.0,
        "{s}"
    );

    // Refusals: a position never handed out, a field that is none, no permission.
    let raw = |resume_after: i64, paths: Vec<&str>| pb::WatchContactChangesRequest {
        resume_after,
        fields: Some(client_info_sdk::prost_types::FieldMask {
            paths: paths.into_iter().map(str::to_owned).collect(),
        }),
        labels: Vec::new(),
        owner_id: 0,
    };
    let e = crm
        .client
        .contacts()
        .watch_contact_changes(raw(i64::MAX / 2, vec![]))
        .await
        .expect_err("ahead");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = crm
        .client
        .contacts()
        .watch_contact_changes(raw(0, vec!["display_name", "shoe_size"]))
        .await
        .expect_err("unknown field");
    let e = client_info_sdk::SdkError::from(e);
    assert_eq!(
        e.violations().first().map(|v| v.field.as_str()),
        Some("fields.paths[1]")
    );
    let e = reader
        .client
        .contacts()
        .watch_contact_changes(raw(0, vec![]))
        .await
        .expect_err("permission");
    assert_eq!(e.code(), Code::PermissionDenied);
    expect_code(
        reader
            .client
            .list_contacts(&ChangeFilter::default(), 0, "")
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn a_pruned_position_is_out_of_range_and_says_to_resync() {
    let app = TestApp::start_with(|c| c.change_retention = Duration::from_secs(1)).await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    crm.client.new_contact("Old").await.expect("create");
    let old = stored_positions(&app, d.0).await[0];
    crm.client.new_contact("Newer").await.expect("create");
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let e = crm
            .client
            .contacts()
            .watch_contact_changes(pb::WatchContactChangesRequest {
                resume_after: old,
                ..Default::default()
            })
            .await;
        match e {
            Err(e) if e.code() == Code::OutOfRange => {
                let e = client_info_sdk::SdkError::from(e);
                assert_eq!(e.reason(), Some("RESUME_POINT_PRUNED"));
                assert!(e.to_string().contains("ListContacts"), "{e}");
                break;
            }
            _ => assert!(
                started.elapsed() < Duration::from_secs(30),
                "the changes are pruned"
            ),
        }
    }
}

#[tokio::test]
async fn a_slow_consumer_holds_the_feed_not_the_servers_memory() {
    let app = TestApp::start_with(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    // A consumer with a small HTTP/2 window that opens the feed and then reads nothing.
    let channel = tonic::transport::Endpoint::from_shared(app.url.clone())
        .expect("url")
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .connect()
        .await
        .expect("connect");
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {}", crm.token).parse().expect("header");
    let mut stub = pb::contacts_service_client::ContactsServiceClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        },
    );
    let mut stream = stub
        .watch_contact_changes(pb::WatchContactChangesRequest::default())
        .await
        .expect("open")
        .into_inner();
    let records: Vec<pb::ImportContactsRequest> = (0..4000)
        .map(|i| pb::ImportContactsRequest {
            display_name: format!("Slowly read contact number {i}"),
            description: "x".repeat(200),
            communications: vec![
                phone(format!("+44 7400 {:06}", 100_000 + i)),
                messaging("telegram", format!("tg-{i}"), ""),
            ],
            ..Default::default()
        })
        .collect();
    crm.client
        .import_contacts(tokio_stream::iter(records))
        .await
        .expect("import");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = scrape(app.metrics_addr()).await;
    let read_ahead = metric(&s, "client_info_changes_delivered_total");
    assert!(
        read_ahead < 2000.0,
        "the feed read {read_ahead} of 4000 changes for a consumer that reads nothing"
    );
    // Once it reads, everything comes.
    let mut got = 0;
    while got < 4000 {
        match tokio::time::timeout(Duration::from_secs(20), stream.message()).await {
            Ok(Ok(Some(m))) => {
                if matches!(
                    m.item,
                    Some(pb::watch_contact_changes_response::Item::Change(_))
                ) {
                    got += 1;
                }
            }
            other => panic!("after {got}: {other:?}"),
        }
    }
    println!("a consumer reading nothing held the feed at {read_ahead} changes read of 4000");
}
