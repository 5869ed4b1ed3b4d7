//! Binding: add a contact from a live interaction, select, unbind, history, read-only cards,
//! audit, and the races between them.

use client_info_sdk::contacts::{messaging, phone};
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::{Client, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, Actor, TestApp, expect_code, expect_invalid};
use diesel_async::RunQueryDsl;
use tonic::Code;

const AGENT: &[Permission] = &[Permission::InteractionsHandle];

struct World {
    app: TestApp,
    crm: Actor,
    routing: Actor,
    agent: Actor,
}

async fn world() -> World {
    let app = TestApp::start().await;
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

impl World {
    async fn live(&self, req: pb::OfferInteractionRequest, agent: &Actor) {
        let id = req.interaction_id.clone();
        self.routing
            .client
            .offer_interaction(req)
            .await
            .expect("offer");
        self.routing
            .client
            .accept_interaction(id, agent.user.0)
            .await
            .expect("accept");
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.app.db().await;
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .await
            .expect("count")
            .n
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
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

fn from_interaction(interaction: &str, request_id: &str, name: &str) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        request_id: request_id.into(),
        interaction_id: interaction.into(),
        display_name: name.into(),
        time_zone: "Europe/London".into(),
        labels: vec!["New".into()],
        description: "added from the desktop".into(),
        ..Default::default()
    }
}

fn bound_id(panel: &pb::ClientInfoPanel) -> Option<i64> {
    match panel.bound_contact.as_ref()?.view.as_ref()? {
        pb::contact_view::View::Contact(c) => Some(c.id),
        pb::contact_view::View::Summary(s) => Some(s.id),
    }
}

#[tokio::test]
async fn adding_a_contact_during_a_chat_moves_the_chat_identity_to_it() {
    let w = world().await;
    let old = contact(
        &w.crm.client,
        "Old holder",
        vec![messaging("telegram", "tg-7", "Ann")],
    )
    .await;
    w.live(
        chat("chat-1", "telegram", "tg-7", "Ann", w.agent.user.0),
        &w.agent,
    )
    .await;

    let (new, created) = w
        .agent
        .client
        .create_contact(from_interaction("chat-1", "r-1", "Ann Lee"))
        .await
        .expect("create");
    assert!(created);
    assert_eq!(
        new.owner.as_ref().map(|o| o.id),
        Some(w.agent.user.0),
        "owner defaults to the caller"
    );
    assert_eq!(new.messaging_channels.len(), 1);
    assert_eq!(new.messaging_channels[0].external_user_id, "tg-7");
    let old_now = w.crm.client.get_contact(old.id).await.expect("old");
    assert!(old_now.messaging_channels.is_empty());
    assert_eq!(old_now.version, old.version + 1);
    assert_eq!(
        w.count(
            "SELECT count(*) AS n FROM contact_messaging_channels WHERE external_user_id = 'tg-7'"
        )
        .await,
        1
    );

    // The audit trails of both contacts record the move: from, to, who, when, in which chat.
    for id in [old.id, new.id] {
        let trail = w
            .crm
            .client
            .list_contact_audit(id, 0, "")
            .await
            .expect("audit");
        let relink = trail
            .entries
            .iter()
            .find(|e| e.action == "channel.relink")
            .expect("relink entry");
        assert_eq!(relink.actor.as_ref().map(|a| a.id), Some(w.agent.user.0));
        assert_eq!(relink.interaction_id, "chat-1");
        assert!(
            relink
                .after_json
                .contains(&format!("\"from_contact_id\":{}", old.id))
        );
        assert!(
            relink
                .after_json
                .contains(&format!("\"to_contact_id\":{}", new.id))
        );
        assert!(relink.occurred_at.is_some());
    }
    // The chat is bound to the new contact and is in its history.
    let panel = w
        .agent
        .client
        .get_client_info("chat-1")
        .await
        .expect("panel");
    assert_eq!(bound_id(&panel), Some(new.id));
    let history = w
        .crm
        .client
        .list_contact_interactions(new.id, 0, "")
        .await
        .expect("history");
    assert_eq!(history.interactions.len(), 1);
    let h = &history.interactions[0];
    assert_eq!(h.interaction_id, "chat-1");
    assert_eq!(h.kind(), pb::InteractionKind::Chat);
    assert_eq!(h.bound_by.as_ref().map(|u| u.name.as_str()), Some("Alice"));
    assert!(h.bound_at.is_some() && h.unbound_at.is_none());
}

#[tokio::test]
async fn adding_a_contact_during_a_call_binds_it_and_links_the_number_only_when_asked() {
    let w = world().await;
    w.live(call("call-1", "07400 123456", w.agent.user.0), &w.agent)
        .await;
    let (plain, _) = w
        .agent
        .client
        .create_contact(from_interaction("call-1", "r-1", "Ann"))
        .await
        .expect("create");
    assert!(
        plain.phones.is_empty(),
        "the number is not linked by default"
    );
    assert_eq!(
        bound_id(
            &w.agent
                .client
                .get_client_info("call-1")
                .await
                .expect("panel")
        ),
        Some(plain.id)
    );

    w.live(call("call-2", "07400 123456", w.agent.user.0), &w.agent)
        .await;
    let req = pb::CreateContactRequest {
        link_caller_number: true,
        ..from_interaction("call-2", "r-2", "Bob")
    };
    let (linked, _) = w.agent.client.create_contact(req).await.expect("create");
    assert_eq!(linked.phones.len(), 1);
    assert_eq!(linked.phones[0].e164, "+447400123456");
    assert_eq!(linked.labels, vec!["New"]);
    assert_eq!(linked.time_zone, "Europe/London");

    let mut hidden = call("call-3", "", w.agent.user.0);
    hidden.interaction_id = "call-3".into();
    w.live(hidden, &w.agent).await;
    let req = pb::CreateContactRequest {
        link_caller_number: true,
        ..from_interaction("call-3", "r-3", "Anon")
    };
    expect_code(
        w.agent.client.create_contact(req).await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn create_from_an_interaction_is_idempotent_and_checked() {
    let w = world().await;
    w.live(call("c", "07400 123456", w.agent.user.0), &w.agent)
        .await;
    let req = from_interaction("c", "r-1", "Ann");
    let (first, created) = w
        .agent
        .client
        .create_contact(req.clone())
        .await
        .expect("first");
    assert!(created);
    let (again, created) = w
        .agent
        .client
        .create_contact(req.clone())
        .await
        .expect("retry");
    assert!(!created);
    assert_eq!(again.id, first.id);
    let changed = pb::CreateContactRequest {
        display_name: "Other".into(),
        ..req.clone()
    };
    expect_code(
        w.agent.client.create_contact(changed).await,
        Code::AlreadyExists,
    );
    // A double click: the same request at once.
    let dbl = from_interaction("c", "r-2", "Bob");
    let results =
        futures_util::future::join_all((0..5).map(|_| w.agent.client.create_contact(dbl.clone())))
            .await;
    let ids: std::collections::HashSet<i64> = results
        .iter()
        .map(|r| r.as_ref().expect("no error").0.id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(w.count("SELECT count(*) AS n FROM contacts").await, 2);
    // A retry after the call ended still answers with the same contact.
    w.routing
        .client
        .close_interaction("c")
        .await
        .expect("close");
    let (late, created) = w
        .agent
        .client
        .create_contact(req)
        .await
        .expect("late retry");
    assert_eq!((late.id, created), (first.id, false));
    // But a new create on a closed interaction is refused, and writes nothing.
    expect_code(
        w.agent
            .client
            .create_contact(from_interaction("c", "r-3", "Late"))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(w.count("SELECT count(*) AS n FROM contacts").await, 2);
}

#[tokio::test]
async fn binding_needs_the_assigned_agent_and_an_accepted_interaction() {
    let w = world().await;
    let c = contact(&w.crm.client, "Ann", vec![]).await;
    let bob = w.app.actor(w.crm.domain, "Bob", AGENT).await;
    let reader = w
        .app
        .actor(w.crm.domain, "Reader", &[Permission::ContactsRead])
        .await;
    w.routing
        .client
        .offer_interaction(call("ring", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    let before = w.count("SELECT count(*) AS n FROM contacts").await;

    // Offered, not yet accepted.
    expect_code(
        w.agent.client.select_contact("ring", c.id).await,
        Code::FailedPrecondition,
    );
    expect_code(
        w.agent
            .client
            .create_contact(from_interaction("ring", "r", "X"))
            .await,
        Code::FailedPrecondition,
    );
    expect_code(
        w.agent.client.unbind_contact("ring").await,
        Code::FailedPrecondition,
    );
    w.routing
        .client
        .accept_interaction("ring", w.agent.user.0)
        .await
        .expect("accept");
    // Another agent, another domain, a missing interaction or contact.
    expect_code(
        bob.client.select_contact("ring", c.id).await,
        Code::NotFound,
    );
    expect_code(
        bob.client
            .create_contact(from_interaction("ring", "r", "X"))
            .await,
        Code::NotFound,
    );
    expect_code(
        w.agent.client.select_contact("nope", c.id).await,
        Code::NotFound,
    );
    expect_code(
        w.agent.client.select_contact("ring", 999_999).await,
        Code::NotFound,
    );
    let other = w.app.domain("other", "GB").await;
    let crm_b = w.app.actor(other, "CRM B", ALL).await;
    let foreign = contact(&crm_b.client, "Foreign", vec![]).await;
    expect_code(
        w.agent.client.select_contact("ring", foreign.id).await,
        Code::NotFound,
    );
    // Permission and bad input.
    expect_code(
        reader.client.select_contact("ring", c.id).await,
        Code::PermissionDenied,
    );
    expect_code(
        reader
            .client
            .create_contact(from_interaction("ring", "r", "X"))
            .await,
        Code::PermissionDenied,
    );
    expect_invalid(
        w.agent
            .client
            .create_contact(from_interaction("ring", "", "X"))
            .await,
        "request_id",
    );
    expect_invalid(
        w.agent
            .client
            .create_contact(pb::CreateContactRequest {
                time_zone: "Nowhere/City".into(),
                ..from_interaction("ring", "r", "X")
            })
            .await,
        "time_zone",
    );
    expect_invalid(
        w.agent
            .client
            .create_contact(pb::CreateContactRequest {
                owner_id: 424_242,
                ..from_interaction("ring", "r", "X")
            })
            .await,
        "owner_id",
    );
    expect_invalid(w.agent.client.select_contact("ring", 0).await, "contact_id");
    expect_invalid(
        w.agent
            .client
            .select_contact("ring", c.id)
            .relink_channel(true)
            .await,
        "relink_channel",
    );
    assert_eq!(
        w.count("SELECT count(*) AS n FROM contacts").await,
        before + 1,
        "only the foreign contact was added"
    );
    // Closed: no more binding.
    w.routing
        .client
        .close_interaction("ring")
        .await
        .expect("close");
    expect_code(
        w.agent.client.select_contact("ring", c.id).await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn select_rebind_and_unbind_keep_the_history() {
    let w = world().await;
    let a = contact(&w.crm.client, "A", vec![]).await;
    let b = contact(&w.crm.client, "B", vec![]).await;
    w.live(call("x", "07400 123456", w.agent.user.0), &w.agent)
        .await;

    let p = w
        .agent
        .client
        .select_contact("x", a.id)
        .await
        .expect("select a");
    assert_eq!(bound_id(&p), Some(a.id));
    assert!(p.allowed_actions.expect("actions").unbind);
    let p = w
        .agent
        .client
        .select_contact("x", a.id)
        .await
        .expect("again");
    assert_eq!(bound_id(&p), Some(a.id));
    assert_eq!(
        w.count("SELECT count(*) AS n FROM interaction_bindings")
            .await,
        1,
        "selecting again is a no-op"
    );
    let p = w
        .agent
        .client
        .select_contact("x", b.id)
        .await
        .expect("rebind");
    assert_eq!(bound_id(&p), Some(b.id));
    let ha = w
        .crm
        .client
        .list_contact_interactions(a.id, 0, "")
        .await
        .expect("history a");
    assert_eq!(ha.interactions.len(), 1);
    assert!(ha.interactions[0].unbound_at.is_some());
    assert_eq!(
        ha.interactions[0].unbound_by.as_ref().map(|u| u.id),
        Some(w.agent.user.0)
    );
    let p = w.agent.client.unbind_contact("x").await.expect("unbind");
    assert_eq!(bound_id(&p), None);
    assert!(!p.allowed_actions.expect("actions").unbind);
    w.agent
        .client
        .unbind_contact("x")
        .await
        .expect("unbind is idempotent");
    let hb = w
        .crm
        .client
        .list_contact_interactions(b.id, 0, "")
        .await
        .expect("history b");
    assert!(hb.interactions[0].unbound_at.is_some());
    let actions = |trail: pb::ListContactAuditResponse| {
        trail
            .entries
            .into_iter()
            .map(|e| e.action)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        actions(
            w.crm
                .client
                .list_contact_audit(a.id, 0, "")
                .await
                .expect("a")
        ),
        vec!["interaction.unbind", "interaction.bind", "contact.create"]
    );
    assert_eq!(
        actions(
            w.crm
                .client
                .list_contact_audit(b.id, 0, "")
                .await
                .expect("b")
        ),
        vec!["interaction.unbind", "interaction.bind", "contact.create"]
    );
}

#[tokio::test]
async fn selecting_during_a_chat_moves_the_identity_only_when_asked() {
    let w = world().await;
    let holder = contact(
        &w.crm.client,
        "Holder",
        vec![messaging("whatsapp", "447400123456", "Ann")],
    )
    .await;
    let target = contact(&w.crm.client, "Target", vec![]).await;
    w.live(
        chat("ch", "whatsapp", "447400123456", "Ann", w.agent.user.0),
        &w.agent,
    )
    .await;
    w.agent
        .client
        .select_contact("ch", target.id)
        .await
        .expect("select");
    assert_eq!(
        w.crm
            .client
            .get_contact(holder.id)
            .await
            .expect("holder")
            .messaging_channels
            .len(),
        1
    );
    w.agent
        .client
        .select_contact("ch", target.id)
        .relink_channel(true)
        .await
        .expect("select with relink");
    assert!(
        w.crm
            .client
            .get_contact(holder.id)
            .await
            .expect("holder")
            .messaging_channels
            .is_empty()
    );
    let t = w.crm.client.get_contact(target.id).await.expect("target");
    assert_eq!(t.messaging_channels.len(), 1);
    assert_eq!(t.version, 2);
}

#[tokio::test]
async fn history_is_newest_first_and_paged() {
    let w = world().await;
    let c = contact(&w.crm.client, "Regular", vec![]).await;
    for i in 0..5 {
        let id = format!("h{i}");
        w.live(call(&id, "07400 123456", w.agent.user.0), &w.agent)
            .await;
        w.agent
            .client
            .select_contact(&id, c.id)
            .await
            .expect("select");
    }
    let p1 = w
        .crm
        .client
        .list_contact_interactions(c.id, 2, "")
        .await
        .expect("p1");
    let p2 = w
        .crm
        .client
        .list_contact_interactions(c.id, 2, p1.next_page_token.clone())
        .await
        .expect("p2");
    let p3 = w
        .crm
        .client
        .list_contact_interactions(c.id, 2, p2.next_page_token.clone())
        .await
        .expect("p3");
    assert!(p3.next_page_token.is_empty());
    let ids: Vec<_> = [p1, p2, p3]
        .into_iter()
        .flat_map(|p| p.interactions)
        .map(|i| i.interaction_id)
        .collect();
    assert_eq!(ids, vec!["h4", "h3", "h2", "h1", "h0"]);
    expect_invalid(
        w.crm
            .client
            .list_contact_interactions(c.id, 0, "bogus")
            .await,
        "page_token",
    );
    expect_code(
        w.crm.client.list_contact_interactions(999_999, 0, "").await,
        Code::NotFound,
    );
    expect_code(
        w.agent.client.list_contact_interactions(c.id, 0, "").await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn read_only_links_open_the_card_and_nothing_else() {
    let w = world().await;
    let ann = contact(&w.crm.client, "Ann", vec![phone("07400 123456")]).await;
    let unrelated = contact(&w.crm.client, "Unrelated", vec![]).await;
    w.live(call("ro", "07400 123456", w.agent.user.0), &w.agent)
        .await;
    // The agent lacks contacts.read: the panel carries summaries with links.
    let panel = w.agent.client.get_client_info("ro").await.expect("panel");
    let link = match panel.candidates[0]
        .contact
        .as_ref()
        .and_then(|v| v.view.as_ref())
    {
        Some(pb::contact_view::View::Summary(s)) => s.read_only_link.clone(),
        other => panic!("{other:?}"),
    };
    assert!(!link.is_empty());
    let card = w
        .agent
        .client
        .get_contact_by_link(&link)
        .await
        .expect("open");
    assert_eq!(card.id, ann.id);
    assert!(card.read_only);
    assert_eq!(card.phones.len(), 1);
    // Any authenticated user of the domain, even without permissions.
    let nobody = w.app.actor(w.crm.domain, "Nobody", &[]).await;
    assert_eq!(
        nobody
            .client
            .get_contact_by_link(&link)
            .await
            .expect("open")
            .id,
        ann.id
    );
    expect_code(
        w.app.client(None).await.get_contact_by_link(&link).await,
        Code::Unauthenticated,
    );
    // The agent may mint links for contacts of its interaction only.
    let minted = w
        .agent
        .client
        .create_read_only_link(ann.id, "ro")
        .await
        .expect("mint");
    assert!(minted.expires_at_unix > 0);
    expect_code(
        w.agent
            .client
            .create_read_only_link(unrelated.id, "ro")
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        w.agent.client.create_read_only_link(ann.id, "").await,
        Code::PermissionDenied,
    );
    w.crm
        .client
        .create_read_only_link(unrelated.id, "")
        .await
        .expect("contacts.read mints any");
    // Tampered, forged, expired, other domain, deleted.
    let mut tampered = link.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    expect_code(
        w.agent.client.get_contact_by_link(tampered).await,
        Code::PermissionDenied,
    );
    expect_code(
        w.agent.client.get_contact_by_link("not-a-link").await,
        Code::PermissionDenied,
    );
    let bearer = w.agent.token.clone();
    expect_code(
        w.agent.client.get_contact_by_link(bearer).await,
        Code::PermissionDenied,
    );
    expect_invalid(w.agent.client.get_contact_by_link("").await, "link");
    let (short, _) = w
        .app
        .keys
        .sign_card_link(
            w.crm.domain,
            ann.id,
            std::time::Duration::from_secs(1),
            None,
        )
        .expect("sign");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let e = expect_code(
        w.agent.client.get_contact_by_link(short).await,
        Code::PermissionDenied,
    );
    assert!(e.to_string().contains("expired"), "{e}");
    let other = w.app.domain("other", "GB").await;
    let stranger = w.app.actor(other, "Stranger", ALL).await;
    expect_code(
        stranger.client.get_contact_by_link(&link).await,
        Code::NotFound,
    );
    w.crm
        .client
        .delete_contact(ann.id, 0)
        .await
        .expect("delete");
    expect_code(
        w.agent.client.get_contact_by_link(&link).await,
        Code::NotFound,
    );
}

/// The link of the first summary view in the agent's panel of `interaction`.
async fn summary_link(agent: &Actor, interaction: &str) -> String {
    let panel = agent
        .client
        .get_client_info(interaction)
        .await
        .expect("panel");
    match panel.candidates[0]
        .contact
        .as_ref()
        .and_then(|v| v.view.as_ref())
    {
        Some(pb::contact_view::View::Summary(s)) => s.read_only_link.clone(),
        other => panic!("{other:?}"),
    }
}

/// Waits until the wall clock is in a new second: links carry their issue time in seconds.
async fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    tokio::time::sleep(std::time::Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 10_000_000,
    ))
    .await;
}

fn expect_reason<T: std::fmt::Debug>(
    result: Result<T, client_info_sdk::SdkError>,
    code: Code,
    reason: &str,
) {
    let e = expect_code(result, code);
    assert_eq!(e.reason(), Some(reason), "{e:?}");
}

#[tokio::test]
async fn read_only_links_are_listed_and_revoked_on_every_server_at_once() {
    let w = world().await;
    let b = TestApp::start_on(&w.app.db_name).await;
    let ann = contact(&w.crm.client, "Ann", vec![phone("07400 123456")]).await;
    let other = contact(&w.crm.client, "Other", vec![]).await;
    w.live(call("rl", "07400 123456", w.agent.user.0), &w.agent)
        .await;
    let crm_link = w
        .crm
        .client
        .create_read_only_link(ann.id, "")
        .await
        .expect("crm mints");
    let agent_link = w
        .agent
        .client
        .create_read_only_link(ann.id, "rl")
        .await
        .expect("agent mints for its interaction");
    assert!(agent_link.link_id > crm_link.link_id);
    let summary = summary_link(&w.agent, "rl").await;
    // The agent's desk on the other server.
    let on_b = b.client(Some(&w.agent.token)).await;
    for link in [&crm_link.link, &agent_link.link, &summary] {
        assert_eq!(
            on_b.get_contact_by_link(link).await.expect("open").id,
            ann.id
        );
    }

    let listed = w
        .crm
        .client
        .list_read_only_links(ann.id, 0, "")
        .await
        .expect("list");
    let ids: Vec<i64> = listed.links.iter().map(|l| l.id).collect();
    assert_eq!(
        ids,
        vec![agent_link.link_id, crm_link.link_id],
        "newest first"
    );
    assert_eq!(
        listed.links[0].created_by.as_ref().map(|u| u.name.as_str()),
        Some("Alice")
    );
    assert!(listed.links.iter().all(|l| l.revoked_at.is_none()));
    let first = w
        .crm
        .client
        .list_read_only_links(ann.id, 1, "")
        .await
        .expect("page");
    let second = w
        .crm
        .client
        .list_read_only_links(ann.id, 1, first.next_page_token)
        .await
        .expect("page 2");
    assert_eq!(second.links[0].id, crm_link.link_id);
    assert!(second.next_page_token.is_empty());

    // The agent revokes its own link; another's needs contacts.write.
    assert!(
        w.agent
            .client
            .revoke_read_only_link(ann.id, agent_link.link_id)
            .await
            .expect("revoke own")
    );
    assert!(
        !w.agent
            .client
            .revoke_read_only_link(ann.id, agent_link.link_id)
            .await
            .expect("again: nothing to do")
    );
    expect_reason(
        w.agent
            .client
            .revoke_read_only_link(ann.id, crm_link.link_id)
            .await,
        Code::PermissionDenied,
        "PERMISSION_MISSING",
    );
    expect_reason(
        w.agent.client.revoke_all_read_only_links(ann.id).await,
        Code::PermissionDenied,
        "PERMISSION_MISSING",
    );
    // Refused at once on the other server; the rest still open.
    expect_reason(
        on_b.get_contact_by_link(&agent_link.link).await,
        Code::PermissionDenied,
        "LINK_REVOKED",
    );
    on_b.get_contact_by_link(&crm_link.link)
        .await
        .expect("still open");
    on_b.get_contact_by_link(&summary)
        .await
        .expect("still open");

    // All: the recorded one left, and the summary views' links issued before.
    assert_eq!(
        w.crm
            .client
            .revoke_all_read_only_links(ann.id)
            .await
            .expect("revoke all"),
        1
    );
    for link in [&crm_link.link, &summary] {
        expect_reason(
            on_b.get_contact_by_link(link).await,
            Code::PermissionDenied,
            "LINK_REVOKED",
        );
    }
    // Links issued afterwards open.
    next_second().await;
    let fresh = w
        .crm
        .client
        .create_read_only_link(ann.id, "")
        .await
        .expect("mint again");
    on_b.get_contact_by_link(&fresh.link)
        .await
        .expect("a new link opens");
    let fresh_summary = summary_link(&w.agent, "rl").await;
    on_b.get_contact_by_link(&fresh_summary)
        .await
        .expect("a new summary link opens");
    let listed = w
        .crm
        .client
        .list_read_only_links(ann.id, 0, "")
        .await
        .expect("list");
    let revoked: Vec<(i64, Option<String>)> = listed
        .links
        .iter()
        .filter(|l| l.revoked_at.is_some())
        .map(|l| (l.id, l.revoked_by.as_ref().map(|u| u.name.clone())))
        .collect();
    assert_eq!(
        revoked,
        vec![
            (agent_link.link_id, Some("Alice".into())),
            (crm_link.link_id, Some("CRM".into()))
        ]
    );
    let audit = w
        .crm
        .client
        .list_contact_audit(ann.id, 100, "")
        .await
        .expect("audit");
    let count = |action: &str| audit.entries.iter().filter(|e| e.action == action).count();
    assert_eq!((count("link.create"), count("link.revoke")), (3, 2));

    // Wrong links and contacts: precise, and nothing changes.
    expect_reason(
        w.crm
            .client
            .revoke_read_only_link(other.id, fresh.link_id)
            .await,
        Code::NotFound,
        "LINK_NOT_FOUND",
    );
    let elsewhere = w.app.domain("elsewhere", "GB").await;
    let stranger = w.app.actor(elsewhere, "Stranger", ALL).await;
    expect_reason(
        stranger
            .client
            .revoke_read_only_link(ann.id, fresh.link_id)
            .await,
        Code::NotFound,
        "LINK_NOT_FOUND",
    );
    expect_reason(
        stranger.client.list_read_only_links(ann.id, 0, "").await,
        Code::NotFound,
        "CONTACT_NOT_FOUND",
    );
    expect_reason(
        w.crm.client.revoke_all_read_only_links(999_999).await,
        Code::NotFound,
        "CONTACT_NOT_FOUND",
    );
    on_b.get_contact_by_link(&fresh.link)
        .await
        .expect("still open after the refused revocations");
    expect_invalid(
        w.crm.client.revoke_read_only_link(ann.id, -1).await,
        "link_id",
    );
    expect_invalid(
        w.crm.client.list_read_only_links(0, 0, "").await,
        "contact_id",
    );
    for (which, field) in [
        (None, "which"),
        (
            Some(pb::revoke_read_only_links_request::Which::All(false)),
            "all",
        ),
    ] {
        let e = w
            .crm
            .client
            .contact_binding()
            .revoke_read_only_links(pb::RevokeReadOnlyLinksRequest {
                contact_id: ann.id,
                which,
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = client_info_sdk::SdkError::from(e);
        assert_eq!(
            e.violations().first().map(|v| v.field.as_str()),
            Some(field)
        );
    }
}

#[tokio::test]
async fn concurrent_creates_for_one_chat_identity_leave_exactly_one_holder() {
    let w = world().await;
    let bob = w.app.actor(w.crm.domain, "Bob", AGENT).await;
    contact(
        &w.crm.client,
        "Old",
        vec![messaging("telegram", "tg-race", "Ann")],
    )
    .await;
    w.live(
        chat("a", "telegram", "tg-race", "Ann", w.agent.user.0),
        &w.agent,
    )
    .await;
    w.live(chat("b", "telegram", "tg-race", "Ann", bob.user.0), &bob)
        .await;
    let (ra, rb) = tokio::join!(
        w.agent
            .client
            .create_contact(from_interaction("a", "ra", "From Alice")),
        bob.client
            .create_contact(from_interaction("b", "rb", "From Bob")),
    );
    let (a, _) = ra.expect("alice's create");
    let (b, _) = rb.expect("bob's create");
    assert_ne!(a.id, b.id);
    assert_eq!(w.count("SELECT count(*) AS n FROM contact_messaging_channels WHERE external_user_id = 'tg-race'").await, 1);
    assert_eq!(w.count("SELECT count(*) AS n FROM contacts").await, 3);
    // Each move was audited: Old -> first, first -> second.
    assert_eq!(
        w.count("SELECT count(*) AS n FROM audit_log WHERE action = 'channel.relink'")
            .await,
        4
    );
}

#[tokio::test]
async fn a_relink_racing_a_select_stays_consistent() {
    let w = world().await;
    let holder = contact(
        &w.crm.client,
        "Holder",
        vec![messaging("viber", "v-1", "Ann")],
    )
    .await;
    let target = contact(&w.crm.client, "Target", vec![]).await;
    let crm_target = contact(&w.crm.client, "CRM target", vec![]).await;
    w.live(
        chat("race", "viber", "v-1", "Ann", w.agent.user.0),
        &w.agent,
    )
    .await;
    for _ in 0..5 {
        let (s, l) = tokio::join!(
            w.agent
                .client
                .select_contact("race", target.id)
                .relink_channel(true),
            w.crm
                .client
                .link_communication(crm_target.id, messaging("viber", "v-1", "Ann"))
                .relink(),
        );
        s.expect("select");
        l.expect("link");
        assert_eq!(w.count("SELECT count(*) AS n FROM contact_messaging_channels WHERE external_user_id = 'v-1'").await, 1);
    }
    let _ = holder;
}
