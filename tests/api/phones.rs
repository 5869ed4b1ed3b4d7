//! Phone normalisation through the API: every format reaches the same E.164 number.

use client_info_sdk::contacts::phone;
use client_info_sdk::pb;
use client_info_tests::{ALL, TestApp, expect_invalid};

#[tokio::test]
async fn every_format_of_a_number_is_one_phone() {
    let app = TestApp::start().await;
    let d = app.domain("paris", "FR").await;
    let crm = app.actor(d, "CRM", ALL).await;
    let (c, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Chloé".into(),
            communications: vec![phone("06 28 23 04 55")],
            ..Default::default()
        })
        .await
        .expect("create");
    assert_eq!(c.phones[0].e164, "+33628230455");
    for format in [
        "+33628230455",
        "+33 6 28 23 04 55",
        "0033 6 28 23 04 55",
        "011 33 6 28 23 04 55",
        "06.28.23.04.55",
        "(06) 28-23-04-55",
        "+33 (0)6 28 23 04 55",
    ] {
        let card = crm
            .client
            .link_communication(c.id, phone(format))
            .await
            .expect(format);
        assert_eq!(card.phones.len(), 1, "{format} made a second phone");
        assert_eq!(card.version, 1, "{format} changed the card");
    }
}

#[tokio::test]
async fn numbers_without_country_code_use_the_domain_region() {
    let app = TestApp::start().await;
    let gb = app.domain("london", "GB").await;
    let us = app.domain("nyc", "US").await;
    let br = app.domain("sao-paulo", "BR").await;
    let gb_crm = app.actor(gb, "CRM", ALL).await;
    let us_crm = app.actor(us, "CRM", ALL).await;
    let br_crm = app.actor(br, "CRM", ALL).await;
    let create = |client: &client_info_sdk::Client, number: &str| {
        let client = client.clone();
        let req = pb::CreateContactRequest {
            display_name: "X".into(),
            communications: vec![phone(number)],
            ..Default::default()
        };
        async move { client.create_contact(req).await.expect("create").0.phones[0].clone() }
    };
    let p = create(&gb_crm.client, "020 7946 0018").await;
    assert_eq!(
        (p.e164.as_str(), p.region.as_str()),
        ("+442079460018", "GB")
    );
    let p = create(&us_crm.client, "(212) 555-0143").await;
    assert_eq!(p.e164, "+12125550143");
    // A foreign number dialled with the international prefix of the domain's country.
    let p = create(&us_crm.client, "011 44 20 7946 0018").await;
    assert_eq!(
        (p.e164.as_str(), p.region.as_str()),
        ("+442079460018", "GB")
    );
    // Brazil: the old 8-digit mobile form gains the ninth digit.
    let p = create(&br_crm.client, "(11) 8765-4321").await;
    assert_eq!(p.e164, "+5511987654321");
    assert_eq!(p.number, "(11) 8765-4321");
}

#[tokio::test]
async fn an_invalid_number_names_its_field() {
    let app = TestApp::start().await;
    let d = app.domain("acme", "GB").await;
    let crm = app.actor(d, "CRM", ALL).await;
    for (i, bad) in ["12", "call me maybe", "+44 1", "0000 000000", "1+2"]
        .iter()
        .enumerate()
    {
        let r = crm
            .client
            .create_contact(pb::CreateContactRequest {
                display_name: "X".into(),
                communications: vec![phone("07400 123456"), phone(*bad)],
                ..Default::default()
            })
            .await;
        let e = expect_invalid(r, "communications[1].phone.number");
        assert_eq!(e.violations().len(), 1, "case {i}: {:?}", e.violations());
    }
    let (c, _) = crm
        .client
        .create_contact(pb::CreateContactRequest {
            display_name: "Y".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    for bad in ["12", "+44 1", "0000 000000"] {
        expect_invalid(
            crm.client.link_communication(c.id, phone(bad)).await,
            "communication.phone.number",
        );
    }
    expect_invalid(
        crm.client
            .create_contact(pb::CreateContactRequest {
                display_name: "Z".into(),
                communications: vec![phone("+44 1")],
                ..Default::default()
            })
            .await,
        "communications[0].phone.number",
    );
}
