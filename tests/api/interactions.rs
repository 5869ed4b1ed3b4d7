//! Live interactions: offer with identification, accept, close, transfer, and the panel.

use client_info_sdk::contacts::{messaging, phone};
use client_info_sdk::interactions::{call, chat};
use client_info_sdk::{Client, pb};
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, Actor, TestApp, expect_code, expect_invalid};
use tonic::Code;

const HANDLE: &[Permission] = &[Permission::InteractionsHandle];
const HANDLE_READ: &[Permission] = &[Permission::InteractionsHandle, Permission::ContactsRead];

struct World {
    app: TestApp,
    crm: Actor,
    routing: Actor,
    agent: Actor,
}

async fn world(region: &str) -> World {
    let app = TestApp::start().await;
    let d = app.domain("acme", region).await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app.actor(d, "Alice", HANDLE_READ).await;
    World {
        app,
        crm,
        routing,
        agent,
    }
}

async fn contact(client: &Client, name: &str, comms: Vec<pb::CommunicationInput>) -> pb::Contact {
    client
        .create_contact(pb::CreateContactRequest {
            display_name: name.into(),
            labels: vec!["VIP".into()],
            communications: comms,
            ..Default::default()
        })
        .await
        .expect("create contact")
        .0
}

fn candidate_ids(panel: &pb::ClientInfoPanel) -> Vec<i64> {
    panel
        .candidates
        .iter()
        .map(|c| match c.contact.as_ref().and_then(|v| v.view.as_ref()) {
            Some(pb::contact_view::View::Contact(c)) => c.id,
            Some(pb::contact_view::View::Summary(s)) => s.id,
            None => 0,
        })
        .collect()
}

fn outcome(r: &pb::OfferInteractionResponse) -> pb::IdentificationOutcome {
    r.identification.as_ref().expect("identification").outcome()
}

#[tokio::test]
async fn every_format_of_the_callers_number_finds_the_stored_contact() {
    let w = world("FR").await;
    let ann = contact(&w.crm.client, "Chloé", vec![phone("06 28 23 04 55")]).await;
    let formats = [
        "+33628230455",
        "0628230455",
        "06 28 23 04 55",
        "06-28-23-04-55",
        "(06) 28 23 04 55",
        "06.28.23.04.55",
        "+33 (0)6 28 23 04 55",
        "0033 6 28 23 04 55",
        "011 33 6 28 23 04 55",
    ];
    for (i, number) in formats.iter().enumerate() {
        let id = format!("call-{i}");
        let r = w
            .routing
            .client
            .offer_interaction(call(&id, *number, w.agent.user.0))
            .await
            .expect(number);
        assert_eq!(
            outcome(&r),
            pb::IdentificationOutcome::Identified,
            "{number}"
        );
        assert_eq!(
            r.identification
                .as_ref()
                .map(|i| i.normalized_number.as_str()),
            Some("+33628230455")
        );
        let panel = w.agent.client.get_client_info(&id).await.expect("panel");
        assert_eq!(candidate_ids(&panel), vec![ann.id], "{number}");
        let m = &panel.candidates[0].matches[0];
        assert_eq!(m.rule(), pb::MatchRule::E164);
        assert!(m.exact && panel.candidates[0].exact);
        match &m.communication {
            Some(pb::candidate_match::Communication::Phone(p)) => {
                assert_eq!(p.e164, "+33628230455")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn brazilian_mobiles_match_with_and_without_the_ninth_digit() {
    let w = world("BR").await;
    let new_form = contact(&w.crm.client, "João", vec![phone("+55 11 98765-4321")]).await;
    for (i, number) in ["+55 11 8765-4321", "(11) 8765-4321", "+551187654321"]
        .iter()
        .enumerate()
    {
        let id = format!("old-{i}");
        let r = w
            .routing
            .client
            .offer_interaction(call(&id, *number, w.agent.user.0))
            .await
            .expect("offer");
        assert_eq!(
            outcome(&r),
            pb::IdentificationOutcome::Identified,
            "{number}"
        );
        let panel = w.agent.client.get_client_info(&id).await.expect("panel");
        assert_eq!(candidate_ids(&panel), vec![new_form.id]);
        assert_eq!(
            panel.candidates[0].matches[0].rule(),
            pb::MatchRule::NationalVariant
        );
        assert!(panel.candidates[0].exact);
    }
    let r = w
        .routing
        .client
        .offer_interaction(call("new", "(11) 98765-4321", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::Identified);
}

#[tokio::test]
async fn a_shared_number_is_ambiguous_with_every_candidate_most_recent_first() {
    let w = world("GB").await;
    let a = contact(&w.crm.client, "Parent", vec![phone("020 7946 0018")]).await;
    let b = contact(&w.crm.client, "Child", vec![phone("+44 20 7946 0018")]).await;
    let c = contact(
        &w.crm.client,
        "Office",
        vec![phone("02079460018"), phone("07400 123456")],
    )
    .await;
    // Touch A so it is the most recently active.
    w.crm
        .client
        .link_communication(a.id, client_info_sdk::contacts::email("p@example.com"))
        .await
        .expect("touch");

    let r = w
        .routing
        .client
        .offer_interaction(call("shared", "+442079460018", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::Ambiguous);
    let ident = r.identification.expect("identification");
    assert_eq!(ident.candidate_count, 3);
    assert!(ident.reason.contains("3 contacts"), "{}", ident.reason);
    assert_eq!(r.bound_contact_id, 0);

    let panel = w
        .agent
        .client
        .get_client_info("shared")
        .await
        .expect("panel");
    let ids = candidate_ids(&panel);
    assert_eq!(ids[0], a.id);
    let mut rest = ids[1..].to_vec();
    rest.sort_unstable();
    let mut expected = vec![b.id, c.id];
    expected.sort_unstable();
    assert_eq!(rest, expected);
    for cand in &panel.candidates {
        assert!(cand.exact);
        assert_eq!(cand.matches.len(), 1);
        assert_eq!(cand.matches[0].rule(), pb::MatchRule::E164);
    }

    // The agent pages through them one by one.
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = w
            .agent
            .client
            .get_client_info_page("shared", 1, token.clone())
            .await
            .expect("page");
        let panel = page.panel.expect("panel");
        assert_eq!(panel.candidates.len(), 1);
        seen.extend(candidate_ids(&panel));
        if page.next_candidate_page_token.is_empty() {
            break;
        }
        token = page.next_candidate_page_token;
    }
    assert_eq!(seen, ids);
    expect_invalid(
        w.agent
            .client
            .get_client_info_page("shared", 1, "c99")
            .await,
        "candidate_page_token",
    );
    expect_invalid(
        w.agent
            .client
            .get_client_info_page("shared", 1, "forged")
            .await,
        "candidate_page_token",
    );
    expect_invalid(
        w.agent.client.get_client_info_page("shared", 101, "").await,
        "candidate_page_size",
    );
}

#[tokio::test]
async fn fallbacks_apply_in_order_only_when_nothing_matches_exactly() {
    let w = world("GB").await;
    w.app.set_identification(w.agent.domain, true, 9).await;
    let uk = contact(&w.crm.client, "UK mobile", vec![phone("+44 7400 123456")]).await;

    // Same national number under another country code: fallback 1.
    let r = w
        .routing
        .client
        .offer_interaction(call("nat", "+1 740 012 3456", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::Identified);
    assert_eq!(r.bound_contact_id, 0, "never autolink on a fallback match");
    let panel = w.agent.client.get_client_info("nat").await.expect("panel");
    assert_eq!(candidate_ids(&panel), vec![uk.id]);
    assert_eq!(
        panel.candidates[0].matches[0].rule(),
        pb::MatchRule::NationalNumber
    );
    assert!(!panel.candidates[0].exact);

    // Same last 9 digits: fallback 2.
    let r = w
        .routing
        .client
        .offer_interaction(call("suffix", "+33 4 00 12 34 56", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::Identified);
    let panel = w
        .agent
        .client
        .get_client_info("suffix")
        .await
        .expect("panel");
    assert_eq!(
        panel.candidates[0].matches[0].rule(),
        pb::MatchRule::LastDigits
    );
    assert!(
        panel
            .identification
            .as_ref()
            .is_some_and(|i| i.reason.contains("last 9 digits"))
    );

    // With the fallback turned off, nothing.
    w.app.set_identification(w.agent.domain, false, 0).await;
    let r = w
        .routing
        .client
        .offer_interaction(call("suffix-off", "+33 4 00 12 34 56", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::NotFound);
}

#[tokio::test]
async fn chats_are_identified_by_messaging_identity() {
    let w = world("GB").await;
    let ann = contact(
        &w.crm.client,
        "Ann",
        vec![messaging("telegram", "tg-42", "Ann")],
    )
    .await;
    let r = w
        .routing
        .client
        .offer_interaction(chat("chat-1", "telegram", "tg-42", "Ann", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::Identified);
    let panel = w
        .agent
        .client
        .get_client_info("chat-1")
        .await
        .expect("panel");
    assert_eq!(panel.kind(), pb::InteractionKind::Chat);
    assert_eq!(candidate_ids(&panel), vec![ann.id]);
    assert_eq!(
        panel.candidates[0].matches[0].rule(),
        pb::MatchRule::MessagingIdentity
    );
    // Another protocol with the same id, or another id, is nobody.
    for (id, proto, ext) in [
        ("chat-2", "whatsapp", "tg-42"),
        ("chat-3", "telegram", "tg-43"),
    ] {
        let r = w
            .routing
            .client
            .offer_interaction(chat(id, proto, ext, "", w.agent.user.0))
            .await
            .expect("offer");
        assert_eq!(outcome(&r), pb::IdentificationOutcome::NotFound);
    }
}

#[tokio::test]
async fn hidden_and_unparseable_numbers_never_fail_the_offer() {
    let w = world("GB").await;
    contact(&w.crm.client, "Anon", vec![phone("07400 123456")]).await;
    let mut hidden = call("hidden", "07400 123456", w.agent.user.0);
    if let Some(pb::client_destination::Destination::Call(c)) = hidden
        .destination
        .as_mut()
        .and_then(|d| d.destination.as_mut())
    {
        c.hidden = true;
    }
    let cases = [
        (hidden, "hidden number"),
        (call("anon", "anonymous", w.agent.user.0), "hidden number"),
        (call("empty", "", w.agent.user.0), "hidden number"),
        (
            call("garbage", "#31#abc", w.agent.user.0),
            "unparseable number",
        ),
        (call("short", "12", w.agent.user.0), "unparseable number"),
    ];
    for (req, reason) in cases {
        let id = req.interaction_id.clone();
        let r = w
            .routing
            .client
            .offer_interaction(req)
            .await
            .expect("offer never fails");
        assert_eq!(outcome(&r), pb::IdentificationOutcome::NotFound, "{id}");
        assert_eq!(
            r.identification.as_ref().map(|i| i.reason.as_str()),
            Some(reason),
            "{id}"
        );
        assert_eq!(r.state(), pb::InteractionState::Offered);
        let panel = w.agent.client.get_client_info(&id).await.expect("panel");
        assert!(panel.candidates.is_empty());
    }
}

#[tokio::test]
async fn autolink_binds_only_one_exact_match() {
    let w = world("GB").await;
    let one = contact(&w.crm.client, "One", vec![phone("07400 111111")]).await;
    contact(&w.crm.client, "Shared A", vec![phone("07400 222222")]).await;
    contact(&w.crm.client, "Shared B", vec![phone("07400 222222")]).await;

    // Off: nothing is bound.
    let r = w
        .routing
        .client
        .offer_interaction(call("off", "07400 111111", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(r.bound_contact_id, 0);

    w.app.set_identification(w.agent.domain, true, 9).await;
    let r = w
        .routing
        .client
        .offer_interaction(call("on", "07400 111111", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(r.bound_contact_id, one.id);
    let panel = w.agent.client.get_client_info("on").await.expect("panel");
    match panel.bound_contact.and_then(|v| v.view) {
        Some(pb::contact_view::View::Contact(c)) => assert_eq!(c.id, one.id),
        other => panic!("{other:?}"),
    }
    let trail = w
        .crm
        .client
        .list_contact_audit(one.id, 0, "")
        .await
        .expect("audit");
    assert_eq!(trail.entries[0].action, "interaction.bind");
    assert_eq!(trail.entries[0].interaction_id, "on");

    let r = w
        .routing
        .client
        .offer_interaction(call("ambiguous", "07400 222222", w.agent.user.0))
        .await
        .expect("offer");
    assert_eq!(outcome(&r), pb::IdentificationOutcome::Ambiguous);
    assert_eq!(r.bound_contact_id, 0);
}

#[tokio::test]
async fn re_offering_the_same_interaction_changes_nothing() {
    let w = world("GB").await;
    contact(&w.crm.client, "Ann", vec![phone("07400 123456")]).await;
    let mut req = call("same", "07400 123456", w.agent.user.0);
    req.queue = Some(pb::Queue {
        id: "q1".into(),
        name: "Support".into(),
    });
    req.variables = vec![pb::Variable {
        key: "lang".into(),
        value: "en".into(),
    }];
    let first = w
        .routing
        .client
        .offer_interaction(req.clone())
        .await
        .expect("first");
    assert!(first.changed);
    let again = w
        .routing
        .client
        .offer_interaction(req.clone())
        .await
        .expect("again");
    assert!(!again.changed && !again.transferred);
    assert_eq!(again.identification, first.identification);
    // Concurrent duplicates too.
    let results = futures_util::future::join_all(
        (0..4).map(|_| w.routing.client.offer_interaction(req.clone())),
    )
    .await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|r| !r.changed)));

    let mut conn = w.app.db().await;
    use diesel_async::RunQueryDsl;
    let n = diesel::sql_query("SELECT count(*) AS n FROM interactions")
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n;
    assert_eq!(n, 1);

    // Another client under the same id is refused.
    let other = call("same", "07400 999999", w.agent.user.0);
    expect_code(
        w.routing.client.offer_interaction(other).await,
        Code::FailedPrecondition,
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test]
async fn offering_to_another_agent_is_a_transfer() {
    let w = world("GB").await;
    let bob = w.app.actor(w.agent.domain, "Bob", HANDLE_READ).await;
    w.routing
        .client
        .offer_interaction(call("t", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    w.routing
        .client
        .accept_interaction("t", w.agent.user.0)
        .await
        .expect("accept");
    let r = w
        .routing
        .client
        .offer_interaction(call("t", "07400 123456", bob.user.0))
        .await
        .expect("transfer");
    assert!(r.transferred && r.changed);
    assert_eq!(r.state(), pb::InteractionState::Offered);
    expect_code(w.agent.client.get_client_info("t").await, Code::NotFound);
    let panel = bob.client.get_client_info("t").await.expect("bob sees it");
    assert_eq!(panel.agent.as_ref().map(|a| a.id), Some(bob.user.0));
    assert!(
        !panel.allowed_actions.expect("actions").search,
        "bob must accept first"
    );
    expect_code(
        w.routing
            .client
            .accept_interaction("t", w.agent.user.0)
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        w.routing
            .client
            .accept_interaction("t", bob.user.0)
            .await
            .expect("bob accepts"),
        pb::InteractionState::Accepted
    );
}

#[tokio::test]
async fn accept_and_close_follow_the_state_machine() {
    let w = world("GB").await;
    let bob = w.app.actor(w.agent.domain, "Bob", HANDLE).await;
    w.routing
        .client
        .offer_interaction(call("sm", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    let e = expect_code(
        w.routing.client.accept_interaction("sm", bob.user.0).await,
        Code::FailedPrecondition,
    );
    assert!(e.to_string().contains("offered"), "{e}");
    assert_eq!(
        w.routing
            .client
            .accept_interaction("sm", w.agent.user.0)
            .await
            .expect("accept"),
        pb::InteractionState::Accepted
    );
    let e = expect_code(
        w.routing
            .client
            .accept_interaction("sm", w.agent.user.0)
            .await,
        Code::FailedPrecondition,
    );
    assert!(e.to_string().contains("accepted"), "{e}");
    assert_eq!(
        w.routing
            .client
            .close_interaction("sm")
            .await
            .expect("close"),
        pb::InteractionState::Closed
    );
    let e = expect_code(
        w.routing.client.close_interaction("sm").await,
        Code::FailedPrecondition,
    );
    assert!(e.to_string().contains("closed"), "{e}");
    expect_code(
        w.routing
            .client
            .accept_interaction("sm", w.agent.user.0)
            .await,
        Code::FailedPrecondition,
    );
    expect_code(
        w.routing
            .client
            .offer_interaction(call("sm", "07400 123456", w.agent.user.0))
            .await,
        Code::FailedPrecondition,
    );
    expect_code(
        w.routing
            .client
            .accept_interaction("nope", w.agent.user.0)
            .await,
        Code::NotFound,
    );
    expect_code(
        w.routing.client.close_interaction("nope").await,
        Code::NotFound,
    );
    // A closed interaction's panel is still readable, with no actions.
    let panel = w.agent.client.get_client_info("sm").await.expect("panel");
    assert_eq!(panel.state(), pb::InteractionState::Closed);
    assert!(panel.closed_at.is_some() && panel.accepted_at.is_some());
}

#[tokio::test]
async fn allowed_actions_by_state_agent_and_permission() {
    let w = world("GB").await;
    let ann = contact(&w.crm.client, "Ann", vec![phone("07400 123456")]).await;
    let reader_only = w
        .app
        .actor(w.agent.domain, "Reader", &[Permission::ContactsRead])
        .await;
    let bob = w.app.actor(w.agent.domain, "Bob", HANDLE).await;
    w.app.set_identification(w.agent.domain, true, 9).await;
    w.routing
        .client
        .offer_interaction(call("bound", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    w.app.set_identification(w.agent.domain, false, 9).await;
    w.routing
        .client
        .offer_interaction(call("free", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");

    let actions = |p: &pb::ClientInfoPanel| {
        let a = p.allowed_actions.expect("actions");
        (a.search, a.add, a.select, a.unbind)
    };
    let p = w
        .agent
        .client
        .get_client_info("bound")
        .await
        .expect("panel");
    assert_eq!(actions(&p), (false, false, false, false), "offered");
    w.routing
        .client
        .accept_interaction("bound", w.agent.user.0)
        .await
        .expect("accept");
    w.routing
        .client
        .accept_interaction("free", w.agent.user.0)
        .await
        .expect("accept");
    let p = w
        .agent
        .client
        .get_client_info("bound")
        .await
        .expect("panel");
    assert_eq!(actions(&p), (true, true, true, true), "accepted, bound");
    let p = w.agent.client.get_client_info("free").await.expect("panel");
    assert_eq!(actions(&p), (true, true, true, false), "accepted, unbound");
    w.routing
        .client
        .close_interaction("bound")
        .await
        .expect("close");
    let p = w
        .agent
        .client
        .get_client_info("bound")
        .await
        .expect("panel");
    assert_eq!(actions(&p), (false, false, false, false), "closed");

    // Another agent: not found. Without interactions.handle: permission denied.
    expect_code(bob.client.get_client_info("free").await, Code::NotFound);
    expect_code(
        reader_only.client.get_client_info("free").await,
        Code::PermissionDenied,
    );
    expect_code(
        w.routing.client.get_client_info("free").await,
        Code::PermissionDenied,
    );
    let _ = ann;
}

#[tokio::test]
async fn agents_without_contacts_read_get_summaries() {
    let w = world("GB").await;
    let ann = contact(&w.crm.client, "Ann Lee", vec![phone("07400 123456")]).await;
    let bob = w.app.actor(w.agent.domain, "Bob", HANDLE).await;
    for (who, id) in [(&w.agent, "full"), (&bob, "summary")] {
        w.routing
            .client
            .offer_interaction(call(id, "07400 123456", who.user.0))
            .await
            .expect("offer");
        let panel = who.client.get_client_info(id).await.expect("panel");
        let view = panel.candidates[0].contact.clone().and_then(|v| v.view);
        match (id, view) {
            ("full", Some(pb::contact_view::View::Contact(c))) => {
                assert_eq!(c.id, ann.id);
                assert_eq!(c.phones.len(), 1);
            }
            ("summary", Some(pb::contact_view::View::Summary(s))) => {
                assert_eq!((s.id, s.display_name.as_str()), (ann.id, "Ann Lee"));
                assert_eq!(s.labels, vec!["VIP"]);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_panel_shows_queue_member_and_variables_in_order() {
    let w = world("GB").await;
    let mut req = call("q", "07400 123456", w.agent.user.0);
    req.direction = pb::InteractionDirection::Outbound as i32;
    req.queue = Some(pb::Queue {
        id: "q-7".into(),
        name: "Callbacks".into(),
    });
    req.member = Some(pb::QueueMember {
        id: "m-1".into(),
        description: "Mobile, call after 6pm".into(),
    });
    req.variables = ["z", "a", "m"]
        .iter()
        .map(|k| pb::Variable {
            key: (*k).into(),
            value: format!("v-{k}"),
        })
        .collect();
    w.routing
        .client
        .offer_interaction(req)
        .await
        .expect("offer");
    let p = w.agent.client.get_client_info("q").await.expect("panel");
    assert_eq!(p.queue.as_ref().map(|q| q.name.as_str()), Some("Callbacks"));
    assert_eq!(p.member_description, "Mobile, call after 6pm");
    let keys: Vec<_> = p.variables.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, vec!["z", "a", "m"]);
    assert_eq!(p.direction(), pb::InteractionDirection::Outbound);
    assert_eq!(p.agent.as_ref().map(|a| a.name.as_str()), Some("Alice"));

    w.routing
        .client
        .offer_interaction(call("direct", "07400 123456", w.agent.user.0))
        .await
        .expect("offer");
    let p = w
        .agent
        .client
        .get_client_info("direct")
        .await
        .expect("panel");
    assert!(p.queue.is_none());
    assert!(p.member_description.is_empty() && p.variables.is_empty());
}

#[tokio::test]
async fn bad_offers_are_invalid_argument_and_unknown_interactions_not_found() {
    let w = world("GB").await;
    let a = w.agent.user.0;
    let var = |k: String, v: String| pb::Variable { key: k, value: v };
    let mut too_many = call("x", "1", a);
    too_many.variables = (0..101).map(|i| var(format!("k{i}"), "v".into())).collect();
    let mut long_key = call("x", "1", a);
    long_key.variables = vec![var("k".repeat(129), "v".into())];
    let mut long_value = call("x", "1", a);
    long_value.variables = vec![var("k".into(), "v".repeat(4097))];
    let mut empty_key = call("x", "1", a);
    empty_key.variables = vec![var(String::new(), "v".into())];
    let mut no_kind = call("x", "1", a);
    no_kind.kind = 0;
    let mut no_direction = call("x", "1", a);
    no_direction.direction = 0;
    let mut mismatch = call("x", "1", a);
    mismatch.kind = pb::InteractionKind::Chat as i32;
    let mut no_destination = call("x", "1", a);
    no_destination.destination = None;
    let mut bad_queue = call("x", "1", a);
    bad_queue.queue = Some(pb::Queue {
        id: String::new(),
        name: "Q".into(),
    });
    let cases = vec![
        (too_many, "variables"),
        (long_key, "variables[0].key"),
        (long_value, "variables[0].value"),
        (empty_key, "variables[0].key"),
        (no_kind, "kind"),
        (no_direction, "direction"),
        (mismatch, "destination"),
        (no_destination, "destination"),
        (bad_queue, "queue.id"),
        (call("", "1", a), "interaction_id"),
        (call("x".repeat(129), "1", a), "interaction_id"),
        (call("x", "1", 0), "agent_user_id"),
        (call("x", "1", 987_654), "agent_user_id"),
        (call("x", "1".repeat(300), a), "destination.call.number"),
        (
            chat("x", "bad proto", "1", "", a),
            "destination.chat.protocol",
        ),
        (
            chat("x", "telegram", "", "", a),
            "destination.chat.external_user_id",
        ),
    ];
    for (req, field) in cases {
        expect_invalid(w.routing.client.offer_interaction(req).await, field);
    }
    // Nothing was recorded.
    expect_code(w.agent.client.get_client_info("x").await, Code::NotFound);
    expect_invalid(w.agent.client.get_client_info("").await, "interaction_id");
    expect_invalid(
        w.routing.client.accept_interaction("x", 0).await,
        "agent_user_id",
    );

    // Another domain's interaction is unknown.
    let other = w.app.domain("other", "GB").await;
    let routing_b = w
        .app
        .actor(other, "Routing B", &[Permission::InteractionsRoute])
        .await;
    let agent_b = w.app.actor(other, "Agent B", HANDLE_READ).await;
    w.routing
        .client
        .offer_interaction(call("mine", "07400 123456", a))
        .await
        .expect("offer");
    expect_code(
        routing_b.client.accept_interaction("mine", a).await,
        Code::NotFound,
    );
    expect_code(
        routing_b.client.close_interaction("mine").await,
        Code::NotFound,
    );
    expect_code(agent_b.client.get_client_info("mine").await, Code::NotFound);
    // An agent of another domain cannot be the target of an offer.
    expect_invalid(
        w.routing
            .client
            .offer_interaction(call("y", "1", agent_b.user.0))
            .await,
        "agent_user_id",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_offers_of_one_interaction_make_one() {
    let w = world("GB").await;
    let one = contact(&w.crm.client, "One", vec![phone("07400 111111")]).await;
    w.app.set_identification(w.agent.domain, true, 9).await;
    let mut stream = w.agent.client.watch_session_once(0).await.expect("watch");

    // The same first offer, eight times at once (routing retrying over several connections).
    let offers: Vec<_> = (0..8)
        .map(|_| {
            let routing = w.routing.client.clone();
            let req = call("race", "07400 111111", w.agent.user.0);
            tokio::spawn(async move { routing.offer_interaction(req).await })
        })
        .collect();
    let mut changed = 0;
    for o in offers {
        let r = o.await.expect("task").expect("every offer succeeds");
        assert_eq!(r.bound_contact_id, one.id);
        changed += usize::from(r.changed);
    }
    assert_eq!(changed, 1, "one offer made it, the others found it made");

    // One interaction, one binding, one audit record of it.
    let trail = w
        .crm
        .client
        .list_contact_audit(one.id, 0, "")
        .await
        .expect("audit");
    let binds = trail
        .entries
        .iter()
        .filter(|e| e.action == "interaction.bind" && e.interaction_id == "race")
        .count();
    assert_eq!(binds, 1);
    let history = w
        .crm
        .client
        .list_contact_interactions(one.id, 0, "")
        .await
        .expect("history");
    assert_eq!(history.interactions.len(), 1);

    // The agent is told once: everything the stream carries until two heartbeats have passed
    // since both events arrived (heartbeats come every 500 ms when idle; the events may come
    // after heartbeats sent before they were delivered), or 30 s of heartbeats without them.
    let mut offered = 0;
    let mut bound = 0;
    let mut heartbeats = 0;
    let mut heartbeats_after = 0;
    while heartbeats_after < 2 && heartbeats < 60 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(20), stream.message())
            .await
            .expect("the stream keeps talking")
            .expect("stream")
            .expect("open");
        match msg.event.and_then(|e| e.event) {
            Some(pb::agent_event::Event::InteractionOffered(_)) => offered += 1,
            Some(pb::agent_event::Event::ContactBound(_)) => bound += 1,
            Some(pb::agent_event::Event::Heartbeat(_)) => {
                heartbeats += 1;
                if offered > 0 && bound > 0 {
                    heartbeats_after += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!((offered, bound), (1, 1));
}
