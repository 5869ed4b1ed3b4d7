//! Identification keys from routing (an attribute entered in the IVR, an e-mail address, a
//! contact id): tried in order before the number or chat identity, the reason naming the key;
//! keys that match nothing or several contacts fall back to the number and say so; the
//! domain's match policy decides what autolink binds on a switchboard's number; bad keys are
//! INVALID_ARGUMENT by field, and nothing is written. Chat identities that carry a phone number
//! (WhatsApp, Viber, SMS) identify by it when nobody holds them, and binding links them.

use client_info_sdk::contacts::{email, phone};
use client_info_sdk::interactions::{attribute_key, call, chat, contact_key, email_key};
use client_info_sdk::{Client, pb};
use client_info_server::db::domains::MatchSettings;
use client_info_server::domain::permission::Permission;
use client_info_tests::{ALL, expect_code, expect_invalid};
use tonic::Code;

async fn contact(
    crm: &Client,
    name: &str,
    account: &str,
    comms: Vec<pb::CommunicationInput>,
) -> i64 {
    crm.create_contact(pb::CreateContactRequest {
        display_name: name.into(),
        attributes: vec![pb::Attribute {
            key: "account_no".into(),
            value: account.into(),
        }],
        communications: comms,
        ..Default::default()
    })
    .await
    .expect("create contact")
    .0
    .id
}

fn identification(r: &pb::OfferInteractionResponse) -> (pb::IdentificationOutcome, String) {
    let i = r.identification.as_ref().expect("identification");
    (i.outcome(), i.reason.clone())
}

/// The first candidate's id and its first match, as the agent's panel shows it.
async fn first_match(agent: &Client, iid: &str) -> (i64, pb::CandidateMatch) {
    let panel = agent.get_client_info(iid).await.expect("panel");
    let c = panel.candidates.first().expect("a candidate");
    let id = match c.contact.as_ref().and_then(|v| v.view.as_ref()) {
        Some(pb::contact_view::View::Contact(c)) => c.id,
        other => panic!("a full card: {other:?}"),
    };
    (id, c.matches[0].clone())
}

#[tokio::test]
async fn keys_from_routing_identify_before_the_number_and_say_how() {
    let app = client_info_tests::TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app
        .actor(
            d,
            "Alice",
            &[Permission::InteractionsHandle, Permission::ContactsRead],
        )
        .await;
    // Ann and Bob share a switchboard's number; Cara and Dan have the same account number.
    let ann = contact(
        &crm.client,
        "Ann Lee",
        "12345",
        vec![phone("07400 111111"), email("Ann.Lee@example.com")],
    )
    .await;
    let bob = contact(&crm.client, "Bob Roe", "555", vec![phone("07400 111111")]).await;
    let cara = contact(&crm.client, "Cara", "777", vec![phone("07400 222222")]).await;
    let _dan = contact(&crm.client, "Dan", "777", vec![]).await;
    let elsewhere = app.domain("elsewhere", "GB").await;
    let stranger = app.actor(elsewhere, "CRM", ALL).await;
    let foreign = contact(&stranger.client, "Foreign", "12345", vec![]).await;

    let offer = |iid: &str, number: &str, keys: Vec<pb::IdentificationKey>| {
        let mut req = call(iid, number, agent.user.0);
        req.identification_keys = keys;
        let routing = routing.client.clone();
        async move { routing.offer_interaction(req).await.expect("offer") }
    };

    // An attribute entered in the IVR names Ann, though two contacts hold the number.
    let r = offer(
        "k-attr",
        "07400 111111",
        vec![attribute_key("account_no", "12345", "entered in the IVR")],
    )
    .await;
    assert_eq!(
        identification(&r),
        (
            pb::IdentificationOutcome::Identified,
            "one contact: attribute account_no = 12345, entered in the IVR".to_owned()
        )
    );
    let (id, m) = first_match(&agent.client, "k-attr").await;
    assert_eq!(
        (id, m.rule(), m.exact),
        (ann, pb::MatchRule::Attribute, true)
    );
    assert_eq!(
        m.communication,
        Some(pb::candidate_match::Communication::Attribute(
            pb::Attribute {
                key: "account_no".into(),
                value: "12345".into()
            }
        ))
    );
    // An e-mail address, in any case; a contact id.
    let r = offer(
        "k-email",
        "07400 999999",
        vec![email_key("ANN.LEE@example.com", "")],
    )
    .await;
    assert_eq!(
        identification(&r).1,
        "one contact: e-mail ANN.LEE@example.com"
    );
    let (id, m) = first_match(&agent.client, "k-email").await;
    assert_eq!((id, m.rule()), (ann, pb::MatchRule::Email));
    assert!(matches!(
        m.communication,
        Some(pb::candidate_match::Communication::Email(e)) if e.address == "Ann.Lee@example.com"
    ));
    let r = offer("k-id", "", vec![contact_key(bob, "known to routing")]).await;
    assert_eq!(
        identification(&r).1,
        format!("one contact: contact id {bob}, known to routing")
    );
    let (id, m) = first_match(&agent.client, "k-id").await;
    assert_eq!(
        (id, m.rule(), m.communication),
        (bob, pb::MatchRule::ContactId, None)
    );

    // In order: a key that matches several contacts is passed over for the next one.
    let r = offer(
        "k-order",
        "07400 111111",
        vec![
            attribute_key("account_no", "777", "IVR"),
            contact_key(cara, ""),
        ],
    )
    .await;
    assert_eq!(
        identification(&r).1,
        format!("one contact: contact id {cara}")
    );
    // No key names one contact: the number decides, and the reason says why.
    let r = offer(
        "k-none",
        "07400 111111",
        vec![
            attribute_key("account_no", "000", "entered in the IVR"),
            attribute_key("account_no", "777", ""),
            contact_key(foreign, "another domain's"),
        ],
    )
    .await;
    assert_eq!(
        identification(&r),
        (
            pb::IdentificationOutcome::Ambiguous,
            format!(
                "2 contacts: exact number (no key identified one contact: attribute account_no = \
                 000, entered in the IVR matched nothing; attribute account_no = 777 matched 2 \
                 contacts; contact id {foreign}, another domain's matched nothing)"
            )
        )
    );
    let r = offer(
        "k-unique-number",
        "07400 222222",
        vec![attribute_key("account_no", "000", "")],
    )
    .await;
    assert_eq!(
        identification(&r).1,
        "one contact: exact number (no key identified one contact: attribute account_no = 000 \
         matched nothing)"
    );
    // A chat with a key.
    let mut req = chat("k-chat", "telegram", "tg-unknown", "Ann", agent.user.0);
    req.identification_keys = vec![attribute_key("account_no", "12345", "from the bot")];
    let r = routing.client.offer_interaction(req).await.expect("chat");
    assert_eq!(
        identification(&r).1,
        "one contact: attribute account_no = 12345, from the bot"
    );
}

#[tokio::test]
async fn the_match_policy_decides_what_autolink_binds_on_a_switchboard() {
    let app = client_info_tests::TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app
        .actor(d, "Alice", &[Permission::InteractionsHandle])
        .await;
    let ann = contact(&crm.client, "Ann", "1", vec![phone("07400 111111")]).await;
    contact(&crm.client, "Bob", "2", vec![phone("07400 111111")]).await;
    let solo = contact(&crm.client, "Solo", "3", vec![phone("07400 333333")]).await;
    let bound = |n: u32, number: &'static str, account: &'static str| {
        let routing = routing.client.clone();
        let agent = agent.user.0;
        async move {
            let mut req = call(format!("p-{n}"), number, agent);
            req.identification_keys = vec![attribute_key("account_no", account, "IVR")];
            routing
                .offer_interaction(req)
                .await
                .expect("offer")
                .bound_contact_id
        }
    };
    let policy = |autolink, shared| MatchSettings {
        autolink,
        autolink_shared_numbers: shared,
        fallback_digits: 9,
    };
    // Off: nothing is bound, whatever matched.
    app.set_match_settings(d, policy(false, true)).await;
    assert_eq!(bound(1, "07400 111111", "1").await, 0);
    // On: a single exact match binds, also a key's pick on a shared number.
    app.set_match_settings(d, policy(true, true)).await;
    assert_eq!(bound(2, "07400 111111", "1").await, ann);
    assert_eq!(bound(3, "07400 333333", "none").await, solo);
    // On, but not on shared numbers: the switchboard's caller is identified, not bound; a
    // number one contact holds still binds.
    app.set_match_settings(d, policy(true, false)).await;
    assert_eq!(bound(4, "07400 111111", "1").await, 0);
    assert_eq!(bound(5, "07400 333333", "3").await, solo);
    let panel = agent.client.get_client_info("p-4").await.expect("panel");
    assert_eq!(
        panel.identification.expect("identification").outcome(),
        pb::IdentificationOutcome::Identified
    );
}

#[tokio::test]
async fn bad_keys_are_refused_by_field_and_nothing_is_written() {
    let app = client_info_tests::TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app
        .actor(d, "Alice", &[Permission::InteractionsHandle])
        .await;
    let mut req = call("bad-keys", "07400 111111", agent.user.0);
    req.identification_keys = vec![
        pb::IdentificationKey::default(),
        attribute_key("account no", "1", ""),
        email_key("not-an-address", ""),
        contact_key(0, ""),
        attribute_key("account_no", "1", "IVR\u{0}"),
        attribute_key("account_no", "x".repeat(2000), ""),
    ];
    let e = expect_invalid(
        routing.client.offer_interaction(req.clone()).await,
        "identification_keys[0].key",
    );
    let fields: Vec<_> = e.violations().iter().map(|v| v.field.clone()).collect();
    assert_eq!(
        fields,
        [
            "identification_keys[0].key",
            "identification_keys[1].attribute.key",
            "identification_keys[2].email",
            "identification_keys[3].contact_id",
            "identification_keys[4].source",
            "identification_keys[5].attribute.value",
        ]
    );
    req.identification_keys = (0..11).map(|k| contact_key(k + 1, "")).collect();
    expect_invalid(
        routing.client.offer_interaction(req).await,
        "identification_keys",
    );
    expect_code(
        agent.client.get_client_info("bad-keys").await,
        Code::NotFound,
    );
}

fn channels(c: &pb::Contact) -> Vec<(String, String)> {
    c.messaging_channels
        .iter()
        .map(|m| (m.protocol.clone(), m.external_user_id.clone()))
        .collect()
}

#[tokio::test]
async fn chat_identities_that_carry_a_number_identify_like_a_call_and_binding_links_them() {
    let app = client_info_tests::TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let routing = app
        .actor(d, "Routing", &[Permission::InteractionsRoute])
        .await;
    let agent = app
        .actor(
            d,
            "Alice",
            &[Permission::InteractionsHandle, Permission::ContactsRead],
        )
        .await;
    let ann = contact(&crm.client, "Ann", "1", vec![phone("07400 123456")]).await;
    contact(&crm.client, "Bob", "2", vec![phone("07400 555555")]).await;
    contact(&crm.client, "Cara", "3", vec![phone("+44 7400 555555")]).await;
    let dan = contact(&crm.client, "Dan", "4", vec![phone("07400 777777")]).await;
    let offer = |iid: &'static str, protocol: &'static str, id: &'static str| {
        let routing = routing.client.clone();
        let agent = agent.user.0;
        async move {
            routing
                .offer_interaction(chat(iid, protocol, id, "Client", agent))
                .await
                .expect("offer")
        }
    };
    let r = offer("c-wa", "whatsapp", "447400123456").await;
    assert_eq!(
        identification(&r),
        (
            pb::IdentificationOutcome::Identified,
            "whatsapp identity unknown, by the number it carries: one contact: exact number"
                .to_owned()
        )
    );
    let (id, m) = first_match(&agent.client, "c-wa").await;
    assert_eq!((id, m.rule()), (ann, pb::MatchRule::E164));
    let r = offer("c-sms", "sms", "07400 123456").await;
    assert_eq!(identification(&r).0, pb::IdentificationOutcome::Identified);
    // A Telegram user id is no number; a shared number is ambiguous, as for a call.
    let r = offer("c-tg", "telegram", "123456789").await;
    assert_eq!(
        identification(&r),
        (pb::IdentificationOutcome::NotFound, "no match".to_owned())
    );
    let r = offer("c-shared", "whatsapp", "447400555555@s.whatsapp.net").await;
    assert_eq!(
        identification(&r),
        (
            pb::IdentificationOutcome::Ambiguous,
            "whatsapp identity unknown, by the number it carries: 2 contacts: exact number"
                .to_owned()
        )
    );

    // The agent binds the WhatsApp chat to Ann: the identity is linked to her, audited.
    routing
        .client
        .accept_interaction("c-wa", agent.user.0)
        .await
        .expect("accept");
    agent
        .client
        .select_contact("c-wa", ann)
        .await
        .expect("select");
    let card = crm.client.get_contact(ann).await.expect("card");
    assert_eq!(
        channels(&card),
        [("whatsapp".to_owned(), "447400123456".to_owned())]
    );
    let trail = crm
        .client
        .list_contact_audit(ann, 10, "")
        .await
        .expect("audit");
    assert!(
        trail
            .entries
            .iter()
            .any(|e| e.action == "communication.link" && e.interaction_id == "c-wa"),
        "{:?}",
        trail.entries
    );
    // The next chat from it is identified by the identity itself.
    let r = offer("c-wa-2", "whatsapp", "447400123456").await;
    assert_eq!(identification(&r).1, "one contact: messaging identity");

    // With autolink, the offer binds Dan and links the identity at once.
    app.set_identification(d, true, 9).await;
    let r = offer("c-auto", "viber", "+44 7400 777777").await;
    assert_eq!(r.bound_contact_id, dan);
    let card = crm.client.get_contact(dan).await.expect("card");
    assert_eq!(
        channels(&card),
        [("viber".to_owned(), "+44 7400 777777".to_owned())]
    );
}
