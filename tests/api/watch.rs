//! Live updates: the agent session stream, resume, replicas, slow consumers and faults.

use std::time::Duration;

use client_info_sdk::contacts::{messaging, phone};
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::watch::WatchOptions;
use client_info_sdk::{Client, SdkError, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, Actor, TcpProxy, TestApp, expect_code};
use tokio_stream::{Stream, StreamExt as _};
use tonic::Code;

use pb::agent_event::Event;

const AGENT: &[Permission] = &[Permission::InteractionsHandle, Permission::ContactsRead];
const WAIT: Duration = Duration::from_secs(10);

struct World {
    app: TestApp,
    crm: Actor,
    routing: Actor,
    agent: Actor,
}

async fn world_on(app: TestApp) -> World {
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", AGENT).await;
    World {
        app,
        crm,
        routing,
        agent,
    }
}

async fn world() -> World {
    world_on(TestApp::start().await).await
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<pb::AgentEvent, SdkError>> + Send>>;

fn watch(client: &Client, resume_after: i64) -> Events {
    Box::pin(client.watch_session(WatchOptions {
        resume_after,
        ..WatchOptions::default()
    }))
}

async fn next(events: &mut Events) -> pb::AgentEvent {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
        .expect("no error")
}

fn kind(e: &pb::AgentEvent) -> &'static str {
    match &e.event {
        Some(Event::Snapshot(_)) => "snapshot",
        Some(Event::Heartbeat(_)) => "heartbeat",
        Some(Event::InteractionOffered(_)) => "offered",
        Some(Event::InteractionAccepted(_)) => "accepted",
        Some(Event::InteractionClosed(_)) => "closed",
        Some(Event::InteractionTransferredAway(_)) => "transferred_away",
        Some(Event::ContactIdentified(_)) => "identified",
        Some(Event::ContactCreated(_)) => "created",
        Some(Event::ContactBound(_)) => "bound",
        Some(Event::ContactUnbound(_)) => "unbound",
        Some(Event::ChannelRelinked(_)) => "relinked",
        Some(Event::ContactUpdated(_)) => "updated",
        Some(Event::ContactDeleted(_)) => "deleted",
        Some(Event::ContactMerged(_)) => "merged",
        Some(Event::ContactUnmerged(_)) => "unmerged",
        None => "none",
    }
}

async fn expect_kinds(events: &mut Events, kinds: &[&str]) -> Vec<pb::AgentEvent> {
    let mut got = Vec::new();
    for k in kinds {
        let e = next(events).await;
        assert_eq!(
            kind(&e),
            *k,
            "after {:?}",
            got.iter().map(kind).collect::<Vec<_>>()
        );
        got.push(e);
    }
    got
}

async fn contact(client: &Client, name: &str, comms: Vec<pb::CommunicationInput>) -> pb::Contact {
    client
        .create_contact(pb::CreateContactRequest {
            display_name: name.into(),
            communications: comms,
            ..Default::default()
        })
        .await
        .expect("create")
        .0
}

#[tokio::test]
async fn the_stream_starts_with_a_snapshot_then_carries_every_kind_of_event_in_order() {
    let w = world().await;
    let ann = contact(&w.crm.client, "Ann", vec![phone("07400 123456")]).await;
    let old = contact(
        &w.crm.client,
        "Old chat holder",
        vec![messaging("telegram", "tg-1", "Ann")],
    )
    .await;
    w.routing
        .client
        .offer_interaction(call("open-1", "07400 999999", w.agent.user.0))
        .await
        .expect("offer");

    let mut events = watch(&w.agent.client, 0);
    let snap = next(&mut events).await;
    match &snap.event {
        Some(Event::Snapshot(s)) => {
            assert_eq!(s.panels.len(), 1);
            assert_eq!(s.panels[0].interaction_id, "open-1");
        }
        other => panic!("{other:?}"),
    }

    w.routing
        .client
        .offer_interaction(call("c1", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    let got = expect_kinds(&mut events, &["identified", "offered"]).await;
    match &got[0].event {
        Some(Event::ContactIdentified(i)) => {
            assert_eq!(i.interaction_id, "c1");
            assert_eq!(i.candidates.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    w.routing
        .client
        .accept_interaction("c1", w.agent.user.0)
        .await
        .expect("accept");
    expect_kinds(&mut events, &["accepted"]).await;
    w.agent
        .client
        .select_contact("c1", ann.id)
        .await
        .expect("select");
    expect_kinds(&mut events, &["bound"]).await;
    // A change made by someone else to a contact bound to the agent's call.
    w.crm
        .client
        .update_contact(pb::UpdateContactRequest {
            contact_id: ann.id,
            expected_version: ann.version,
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
            description: "VIP".into(),
            ..Default::default()
        })
        .await
        .expect("update");
    let got = expect_kinds(&mut events, &["updated"]).await;
    match &got[0].event {
        Some(Event::ContactUpdated(u)) => match u.contact.as_ref().and_then(|v| v.view.as_ref()) {
            Some(pb::contact_view::View::Contact(c)) => assert_eq!(c.description, "VIP"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    w.agent.client.unbind_contact("c1").await.expect("unbind");
    expect_kinds(&mut events, &["unbound"]).await;

    // A chat: adding a contact moves the identity.
    w.routing
        .client
        .offer_interaction(chat("ch", "telegram", "tg-1", "Ann", w.agent.user.0))
        .await
        .expect("offer");
    expect_kinds(&mut events, &["identified", "offered"]).await;
    w.routing
        .client
        .accept_interaction("ch", w.agent.user.0)
        .await
        .expect("accept");
    expect_kinds(&mut events, &["accepted"]).await;
    let (new, _) = w
        .agent
        .client
        .create_contact(pb::CreateContactRequest {
            request_id: "r1".into(),
            interaction_id: "ch".into(),
            display_name: "Ann (chat)".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let got = expect_kinds(&mut events, &["created", "bound", "relinked", "updated"]).await;
    match &got[2].event {
        Some(Event::ChannelRelinked(r)) => {
            assert_eq!((r.from_contact_id, r.to_contact_id), (old.id, new.id));
            assert_eq!(r.interaction_id, "ch");
        }
        other => panic!("{other:?}"),
    }
    // The old holder was a candidate of the chat: its deletion concerns the agent.
    w.crm
        .client
        .delete_contact(old.id, 0)
        .await
        .expect("delete");
    expect_kinds(&mut events, &["deleted"]).await;
    // Transfer away, close.
    let bob = w.app.actor(w.agent.domain, "Bob", AGENT).await;
    w.routing
        .client
        .offer_interaction(call("c1", "07400 123456", bob.user.0))
        .await
        .expect("transfer");
    expect_kinds(&mut events, &["transferred_away"]).await;
    w.routing
        .client
        .close_interaction("ch")
        .await
        .expect("close");
    let closed = expect_kinds(&mut events, &["closed"]).await;
    // Sequences rise; the snapshot's is where the stream resumes from.
    assert!(closed[0].sequence > snap.sequence);
}

#[tokio::test]
async fn resuming_replays_what_was_missed_without_gaps_or_duplicates() {
    let w = world().await;
    let mut events = watch(&w.agent.client, 0);
    next(&mut events).await;
    w.routing
        .client
        .offer_interaction(call("a", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    let seen = expect_kinds(&mut events, &["identified", "offered"]).await;
    let last = seen[1].sequence;
    drop(events);
    // Missed while disconnected.
    w.routing
        .client
        .accept_interaction("a", w.agent.user.0)
        .await
        .expect("accept");
    w.routing
        .client
        .offer_interaction(call("b", "07400 654321", w.agent.user.0))
        .await
        .expect("offer");
    w.routing
        .client
        .close_interaction("a")
        .await
        .expect("close");
    let mut events = watch(&w.agent.client, last);
    let got = expect_kinds(
        &mut events,
        &["accepted", "identified", "offered", "closed"],
    )
    .await;
    let seqs: Vec<i64> = got.iter().map(|e| e.sequence).collect();
    assert!(
        seqs.windows(2).all(|p| p[0] < p[1]) && seqs[0] > last,
        "{seqs:?}"
    );
    // And live from there on.
    w.routing
        .client
        .accept_interaction("b", w.agent.user.0)
        .await
        .expect("accept");
    expect_kinds(&mut events, &["accepted"]).await;
}

#[tokio::test]
async fn agents_only_see_their_own_domains_and_interactions() {
    let w = world().await;
    let bob = w.app.actor(w.agent.domain, "Bob", AGENT).await;
    let other = w.app.domain("other", "GB").await;
    let routing_b = w
        .app
        .actor(other, "Routing B", &[Permission::InteractionsRoute])
        .await;
    let carol = w.app.actor(other, "Carol", AGENT).await;
    let mut bobs = watch(&bob.client, 0);
    let mut carols = watch(&carol.client, 0);
    next(&mut bobs).await;
    next(&mut carols).await;
    w.routing
        .client
        .offer_interaction(call("alice-1", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    routing_b
        .client
        .offer_interaction(call("carol-1", "07400 123456", carol.user.0))
        .await
        .expect("offer");
    let got = expect_kinds(&mut carols, &["identified", "offered"]).await;
    assert!(got.iter().all(|e| format!("{e:?}").contains("carol-1")));
    w.routing
        .client
        .offer_interaction(call("bob-1", "07400 123456", bob.user.0))
        .await
        .expect("offer");
    let got = expect_kinds(&mut bobs, &["identified", "offered"]).await;
    assert!(
        got.iter().all(|e| format!("{e:?}").contains("bob-1")),
        "bob never sees alice-1"
    );
}

#[tokio::test]
async fn bad_resume_points_and_missing_permission_are_refused() {
    let w = world().await;
    let c = &w.agent.client;
    expect_code(
        c.watch_session_once(1_000_000).await.map(drop),
        Code::InvalidArgument,
    );
    expect_code(
        c.watch_session_once(-1).await.map(drop),
        Code::InvalidArgument,
    );
    expect_code(
        w.routing.client.watch_session_once(0).await.map(drop),
        Code::PermissionDenied,
    );
    expect_code(
        w.app
            .client(None)
            .await
            .watch_session_once(0)
            .await
            .map(drop),
        Code::Unauthenticated,
    );
    // The reconnecting watch gives up on errors that reconnecting cannot fix.
    let mut events = watch(&w.routing.client, 0);
    let e = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("answer")
        .expect("item");
    assert_eq!(e.expect_err("refused").code(), Code::PermissionDenied);
}

#[tokio::test]
async fn resuming_before_the_retention_window_is_out_of_range() {
    let app = TestApp::start_with(|c| c.event_retention = Duration::from_secs(1)).await;
    let w = world_on(app).await;
    w.routing
        .client
        .offer_interaction(call("old", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    w.routing
        .client
        .accept_interaction("old", w.agent.user.0)
        .await
        .expect("accept");
    // Wait for the pruner (every second with this retention): resuming from 1 is refused once
    // those events are gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match w.agent.client.watch_session_once(1).await {
            Err(e) if e.code() == Code::OutOfRange => break,
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the events were not pruned"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("resuming from 1: {e}"),
        }
    }
    // The SDK then starts over with a snapshot.
    let mut events = watch(&w.agent.client, 1);
    let snap = next(&mut events).await;
    assert_eq!(kind(&snap), "snapshot");
}

#[tokio::test]
async fn events_reach_watchers_connected_to_another_replica() {
    let w = world().await;
    let second = TestApp::start_on(&w.app.db_name).await;
    let agent_on_b = second.client(Some(&w.agent.token)).await;
    let mut events = watch(&agent_on_b, 0);
    next(&mut events).await;
    w.routing
        .client
        .offer_interaction(call("x", "07400 123456", w.agent.user.0))
        .await
        .expect("offer via A");
    expect_kinds(&mut events, &["identified", "offered"]).await;
}

#[tokio::test]
async fn a_slow_consumer_is_cut_with_resource_exhausted_and_loses_nothing() {
    let app = TestApp::start_with(|c| c.stream_buffer = 4).await;
    let w = world_on(app).await;
    w.routing
        .client
        .offer_interaction(call("slow", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    let mut raw = w.agent.client.watch_session_once(0).await.expect("watch");
    let snap = raw
        .message()
        .await
        .expect("ok")
        .expect("snapshot")
        .event
        .expect("event");
    // Flood without reading: far more than the buffers and the transport window hold.
    let mut conn = w.app.db().await;
    let payload = prost::Message::encode_to_vec(&pb::AgentEvent {
        sequence: 0,
        occurred_at: None,
        event: Some(Event::InteractionAccepted(pb::InteractionAccepted {
            interaction_id: "x".repeat(2000),
        })),
    });
    let batch: Vec<_> = (0..100)
        .map(|_| client_info_server::db::outbox::Outgoing::to(vec![w.agent.user], payload.clone()))
        .collect();
    for _ in 0..10 {
        client_info_server::db::tx::publish(&mut conn, w.agent.domain, &batch)
            .await
            .expect("publish");
    }
    // The numbers the flood got (increasing, not contiguous: see db/outbox.rs).
    #[derive(diesel::QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        sequence: i64,
    }
    let expected: Vec<i64> = diesel_async::RunQueryDsl::load::<Seq>(
        diesel::sql_query(format!(
            "SELECT sequence FROM events WHERE domain_id = {} AND sequence > {} ORDER BY sequence",
            w.agent.domain.0, snap.sequence
        )),
        &mut conn,
    )
    .await
    .expect("sequences")
    .into_iter()
    .map(|s| s.sequence)
    .collect();
    assert_eq!(expected.len(), 1000);
    // Reading now: the stream delivers what it buffered, then ends with RESOURCE_EXHAUSTED.
    let mut got = 0;
    let status = loop {
        match tokio::time::timeout(WAIT, raw.message())
            .await
            .expect("progress")
        {
            Ok(Some(m)) => {
                let e = m.event.expect("event");
                if e.sequence > 0 {
                    assert_eq!(e.sequence, expected[got], "in order, none missing");
                    got += 1;
                }
            }
            Ok(None) => panic!("ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(got < 1000, "it was cut before the end");
    let last = if got == 0 {
        snap.sequence
    } else {
        expected[got - 1]
    };
    // Resuming gets the rest, exactly.
    let mut raw = w
        .agent
        .client
        .watch_session_once(last)
        .await
        .expect("resume");
    while got < 1000 {
        let e = raw
            .message()
            .await
            .expect("ok")
            .expect("event")
            .event
            .expect("event");
        if e.sequence > 0 {
            assert_eq!(e.sequence, expected[got]);
            got += 1;
        }
    }
}

#[tokio::test]
async fn a_disconnected_client_frees_its_stream() {
    let w = world().await;
    let mut events = watch(&w.agent.client, 0);
    next(&mut events).await;
    assert_eq!(w.app.hub_subscribers(), 1);
    drop(events);
    let deadline = tokio::time::Instant::now() + WAIT;
    while w.app.hub_subscribers() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn heartbeats_flow_while_idle() {
    let w = world().await;
    let mut events: Events = Box::pin(w.agent.client.watch_session(WatchOptions {
        heartbeats: true,
        ..WatchOptions::default()
    }));
    next(&mut events).await;
    let beat = next(&mut events).await;
    assert_eq!((kind(&beat), beat.sequence), ("heartbeat", 0));
}

#[tokio::test]
async fn the_sdk_watch_survives_a_server_restart_without_loss_or_duplicates() {
    let mut w = world().await;
    let mut events = watch(&w.agent.client, 0);
    next(&mut events).await;
    w.routing
        .client
        .offer_interaction(call("r1", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    expect_kinds(&mut events, &["identified", "offered"]).await;
    w.app.restart_server().await;
    // Changes while the SDK reconnects, through the new server.
    let routing = w.app.client(Some(&w.routing.token)).await;
    routing
        .accept_interaction("r1", w.agent.user.0)
        .await
        .expect("accept");
    routing.close_interaction("r1").await.expect("close");
    let got = expect_kinds(&mut events, &["accepted", "closed"]).await;
    assert!(got[0].sequence < got[1].sequence);
    // Nothing more (no duplicate) arrives.
    let extra = tokio::time::timeout(Duration::from_millis(1500), events.next()).await;
    assert!(extra.is_err(), "unexpected {extra:?}");
}

#[tokio::test]
async fn a_lost_database_connection_is_re_established_and_nothing_is_missed() {
    let w = world().await;
    let proxy = TcpProxy::postgres().await;
    let behind_proxy = TestApp::start_on_with(&w.app.db_name, &proxy.url(&w.app.db_name)).await;
    let agent = behind_proxy.client(Some(&w.agent.token)).await;
    let mut events = watch(&agent, 0);
    next(&mut events).await;
    w.routing
        .client
        .offer_interaction(call("f1", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    expect_kinds(&mut events, &["identified", "offered"]).await;
    // The events may have come through the safety poll before its LISTEN was up.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !behind_proxy.hub_listening() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.cut();
    let deadline = tokio::time::Instant::now() + WAIT;
    while behind_proxy.hub_listening() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener did not notice the cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Changes while that server cannot reach the database (made through the other server).
    w.routing
        .client
        .accept_interaction("f1", w.agent.user.0)
        .await
        .expect("accept");
    w.routing
        .client
        .offer_interaction(call("f2", "07400 654321", w.agent.user.0))
        .await
        .expect("offer");
    proxy.restore();
    expect_kinds(&mut events, &["accepted", "identified", "offered"]).await;
    // And live again.
    w.routing
        .client
        .close_interaction("f1")
        .await
        .expect("close");
    expect_kinds(&mut events, &["closed"]).await;
}
