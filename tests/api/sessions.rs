//! The session cache: callers' domains and users are cached by every replica and dropped on
//! every change, whoever makes it, and whenever the replica's LISTEN connection is lost.

use std::time::Duration;

use client_info_sdk::contacts::phone;
use client_info_sdk::pb;
use client_info_server::domain::ids::{DomainId, UserId};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp, admin_url, expect_code};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use tonic::Code;

/// The longest any condition below is waited for (they come in milliseconds).
const WAIT: Duration = Duration::from_secs(30);

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: never");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `sql` on the test database and waits until `replica` has emptied its cache since.
async fn change_and_wait(app: &TestApp, replica: &TestApp, sql: &str) {
    let mut invalidations = replica.sessions().invalidations();
    invalidations.borrow_and_update();
    app.db().await.batch_execute(sql).await.expect(sql);
    tokio::time::timeout(WAIT, invalidations.changed())
        .await
        .expect("the replica heard the change")
        .expect("cache alive");
}

fn unknown_user<T: std::fmt::Debug>(result: Result<T, client_info_sdk::SdkError>) {
    let e = expect_code(result, Code::Unauthenticated);
    assert_eq!(e.reason(), Some("TOKEN_USER_UNKNOWN"), "{e:?}");
}

#[tokio::test]
async fn every_replica_refuses_a_deleted_user_or_domain_and_sees_new_settings() {
    let a = TestApp::start().await;
    let b = TestApp::start_on(&a.db_name).await;
    until("both replicas listen", || {
        a.sessions().is_live() && b.sessions().is_live()
    })
    .await;
    let d = a.domain("acme", "FR").await;
    let crm = a.actor(d, "CRM", ALL).await;
    let reader = a.actor(d, "Reader", &[Permission::ContactsRead]).await;
    let ann = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann".into(),
            communications: vec![phone("06 28 23 04 55")],
            ..Default::default()
        })
        .await
        .expect("create")
        .0
        .id;
    let crm_on_b = b.client(Some(&crm.token)).await;
    let reader_on_b = b.client(Some(&reader.token)).await;

    // Served by both replicas, and cached by both.
    reader.client.list_labels("", 0).await.expect("via A");
    reader_on_b.list_labels("", 0).await.expect("via B");
    assert!(a.sessions().holds(d, reader.user));
    assert!(b.sessions().holds(d, reader.user));

    // A user deleted in the database (as an operator would) is refused by both at once.
    change_and_wait(
        &a,
        &b,
        &format!("DELETE FROM users WHERE id = {}", reader.user.0),
    )
    .await;
    assert!(!b.sessions().holds(d, reader.user));
    unknown_user(reader_on_b.list_labels("", 0).await);
    unknown_user(reader.client.list_labels("", 0).await);

    // Domain settings: a number read in the domain's region (FR) finds Ann; once the region
    // is GB, the same digits are no French number any more, on every replica.
    let search = || pb::SearchContactsRequest {
        destination: "06 28 23 04 55".into(),
        ..Default::default()
    };
    let hits = crm_on_b.search_contacts(search()).await.expect("search");
    assert_eq!(hits.hits.len(), 1);
    assert!(b.sessions().holds(d, crm.user));
    change_and_wait(
        &a,
        &b,
        &format!(
            "UPDATE domains SET default_region = 'GB' WHERE id = {}",
            d.0
        ),
    )
    .await;
    let hits = crm_on_b.search_contacts(search()).await.expect("search");
    assert!(hits.hits.is_empty(), "read with the old region: {hits:?}");
    let fr = crm_on_b
        .search_contacts(pb::SearchContactsRequest {
            destination: "+33 6 28 23 04 55".into(),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(fr.hits.len(), 1, "contact {ann}");

    // A deleted domain: its users are gone with it.
    change_and_wait(&a, &b, &format!("DELETE FROM domains WHERE id = {}", d.0)).await;
    unknown_user(crm_on_b.list_labels("", 0).await);
    unknown_user(crm.client.list_labels("", 0).await);
}

#[tokio::test]
async fn the_cache_is_dropped_and_bypassed_while_the_listener_is_lost() {
    let app = TestApp::start().await;
    until("listening", || app.sessions().is_live()).await;
    let d = app.domain("acme", "GB").await;
    let x = app.actor(d, "X", &[Permission::ContactsRead]).await;
    let y = app.actor(d, "Y", &[Permission::ContactsRead]).await;
    x.client.list_labels("", 0).await.expect("x");
    y.client.list_labels("", 0).await.expect("y");
    assert!(app.sessions().holds(d, x.user));

    // Keep a connection for the test, then cut the listener alone off the database: the
    // server keeps its pooled connections but cannot listen again.
    let mut db = app.db().await;
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("admin");
    let name = &app.db_name;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND query LIKE 'LISTEN %'"
        ))
        .await
        .expect("cut the listener off");
    until("the listener is lost", || !app.hub_listening()).await;
    assert!(!app.sessions().is_live());
    assert!(
        app.sessions().is_empty(),
        "dropped when the listener was lost"
    );

    // A change nobody hears: the server must read the database, not a cache.
    db.batch_execute(&format!("DELETE FROM users WHERE id = {}", x.user.0))
        .await
        .expect("delete x");
    unknown_user(x.client.list_labels("", 0).await);
    y.client.list_labels("", 0).await.expect("y");
    assert!(!app.sessions().holds(d, y.user), "nothing cached meanwhile");

    // Back: cached again.
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .expect("restore");
    until("listening again", || app.sessions().is_live()).await;
    y.client.list_labels("", 0).await.expect("y");
    assert!(app.sessions().holds(d, y.user));
    unknown_user(x.client.list_labels("", 0).await);
    assert!(!app.sessions().holds(DomainId(d.0), UserId(x.user.0)));
}
