//! The client's recent history in the panel (GetClientInfo, the session stream's panel, the
//! read-only card): the latest interaction that ended, the count of the last 30 days, and the
//! others open now, from the interactions bound to the identified contact.

use std::time::{Duration, SystemTime};

use client_info_sdk::contacts::phone;
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::pb;
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, TestApp};

#[tokio::test]
async fn the_panel_shows_the_clients_recent_history() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let handle = &[Permission::InteractionsHandle, Permission::ContactsRead];
    let alice = app.actor(d, "Alice", handle).await;
    let bob = app.actor(d, "Bob", handle).await;
    let (ann, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Ann Lee".into(),
            communications: vec![phone("07400 123456")],
            ..Default::default()
        })
        .await
        .expect("create");
    let offered = |iid: &'static str, agent: i64, queue: &'static str, days_ago: u64| {
        let mut req = call(iid, "07400 123456", agent);
        req.queue = Some(pb::Queue {
            id: queue.to_lowercase(),
            name: queue.into(),
        });
        let at = SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        req.occurred_at = Some(at.into());
        req
    };
    // Handled and bound: one 40 days ago, one yesterday (both ended), one open now with Bob.
    for (req, agent) in [
        (offered("h-old", alice.user.0, "Support", 40), &alice),
        (offered("h-1", alice.user.0, "Support", 1), &alice),
    ] {
        let iid = req.interaction_id.clone();
        routing.client.offer_interaction(req).await.expect("offer");
        routing
            .client
            .accept_interaction(&iid, agent.user.0)
            .await
            .expect("accept");
        agent
            .client
            .select_contact(&iid, ann.id)
            .await
            .expect("bind");
        routing.client.close_interaction(&iid).await.expect("close");
    }
    let mut open = chat("h-open", "telegram", "tg-ann", "Ann", bob.user.0);
    open.queue = Some(pb::Queue {
        id: "sales".into(),
        name: "Sales".into(),
    });
    routing.client.offer_interaction(open).await.expect("offer");
    routing
        .client
        .accept_interaction("h-open", bob.user.0)
        .await
        .expect("accept");
    bob.client
        .select_contact("h-open", ann.id)
        .await
        .expect("bind");

    // Ann calls again: Alice's panel shows her history.
    let mut session = alice.client.watch_session_once(0).await.expect("watch");
    routing
        .client
        .offer_interaction(offered("h-now", alice.user.0, "Support", 0))
        .await
        .expect("offer");
    let check = |h: &pb::ClientHistory| {
        assert_eq!(h.contact_id, ann.id);
        let last = h.last_closed.as_ref().expect("the last that ended");
        assert_eq!(last.interaction_id, "h-1");
        assert_eq!(
            (last.kind(), last.direction(), last.state()),
            (
                pb::InteractionKind::Call,
                pb::InteractionDirection::Inbound,
                pb::InteractionState::Closed
            )
        );
        assert_eq!(
            last.queue.as_ref().map(|q| q.name.as_str()),
            Some("Support")
        );
        assert_eq!(last.agent.as_ref().map(|a| a.name.as_str()), Some("Alice"));
        assert!(last.closed_at.is_some() && last.offered_at.is_some());
        assert_eq!(
            h.interactions_last_30_days, 2,
            "h-1 and h-open; h-old is older"
        );
        let open: Vec<_> = h
            .open_now
            .iter()
            .map(|o| {
                (
                    o.interaction_id.as_str(),
                    o.kind(),
                    o.queue.as_ref().map(|q| q.name.as_str()),
                    o.agent.as_ref().map(|a| a.name.as_str()),
                )
            })
            .collect();
        assert_eq!(
            open,
            [(
                "h-open",
                pb::InteractionKind::Chat,
                Some("Sales"),
                Some("Bob")
            )]
        );
    };
    let panel = alice.client.get_client_info("h-now").await.expect("panel");
    check(panel.history.as_ref().expect("history on the panel"));
    // The session stream's panel carries it too.
    let streamed = loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), session.message())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("open");
        if let Some(pb::agent_event::Event::InteractionOffered(o)) = msg.event.and_then(|e| e.event)
            && o.panel
                .as_ref()
                .is_some_and(|p| p.interaction_id == "h-now")
        {
            break o.panel.expect("panel");
        }
    };
    check(
        streamed
            .history
            .as_ref()
            .expect("history on the streamed panel"),
    );
    // The read-only card: the same history, nothing left out.
    let link = crm
        .client
        .create_read_only_link(ann.id, "")
        .await
        .expect("link");
    let card = alice.client.read_only_card(&link.link).await.expect("card");
    let h = card.history.expect("history on the card");
    assert_eq!(
        (
            h.last_closed.map(|l| l.interaction_id),
            h.interactions_last_30_days,
            h.open_now.len()
        ),
        (Some("h-1".to_owned()), 2, 1)
    );

    // A caller nobody knows: no history.
    let r = routing
        .client
        .offer_interaction(call("h-stranger", "07400 999999", alice.user.0))
        .await
        .expect("offer");
    assert_eq!(r.bound_contact_id, 0);
    let panel = alice
        .client
        .get_client_info("h-stranger")
        .await
        .expect("panel");
    assert!(panel.history.is_none());
}
