//! `--demo`: a demo domain with users and a few thousand realistic contacts (several
//! countries' phones, e-mails, messaging identities, labels, attributes, some shared numbers),
//! seeded with multi-row inserts, plus ready-to-paste tokens.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::auth::TokenKeys;
use crate::db::schema::{
    contact_attributes, contact_emails, contact_labels, contact_messaging_channels, contact_phones,
    contacts, labels,
};
use crate::db::{domains, users};
use crate::domain::ids::{DomainId, UserId};
use crate::domain::permission::Permission;
use crate::domain::phone::{ParsedPhone, Region, parse_phone};
use crate::error::Error;

/// The demo domain's name.
pub const DEMO_DOMAIN: &str = "demo";
/// How many contacts the demo seeds.
pub const DEMO_CONTACTS: usize = 3000;
/// How long demo tokens stay valid.
pub const DEMO_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
const BATCH: usize = 1000;

/// A demo user and its token.
#[derive(Debug, Clone)]
pub struct DemoUser {
    /// Short role name used in the printed variables (ALICE, BOB, ...).
    pub handle: &'static str,
    /// Id.
    pub id: UserId,
    /// Name.
    pub name: &'static str,
    /// Permissions of the token.
    pub permissions: &'static [Permission],
    /// A token valid for [`DEMO_TOKEN_TTL`].
    pub token: String,
}

/// What `--demo` set up.
#[derive(Debug, Clone)]
pub struct Demo {
    /// The domain.
    pub domain: DomainId,
    /// Users with tokens.
    pub users: Vec<DemoUser>,
    /// A contact id to try GetContact with.
    pub sample_contact: i64,
    /// One of that contact's numbers, as stored (to offer a call from).
    pub sample_number: String,
    /// True when this run seeded (false: the demo domain existed).
    pub seeded: bool,
}

const USERS: [(&str, &str, &[Permission]); 6] = [
    (
        "ALICE",
        "Alice Martin (agent)",
        &[Permission::InteractionsHandle, Permission::ContactsRead],
    ),
    (
        "BOB",
        "Bob Nowak (agent, no CRM access)",
        &[Permission::InteractionsHandle],
    ),
    (
        "CAROL",
        "Carol Diaz (supervisor)",
        &[
            Permission::ContactsRead,
            Permission::ContactsWrite,
            Permission::InteractionsHandle,
        ],
    ),
    (
        "ROUTING",
        "Routing service",
        &[Permission::InteractionsRoute],
    ),
    (
        "CRM",
        "CRM sync",
        &[
            Permission::ContactsRead,
            Permission::ContactsWrite,
            Permission::ContactsChanges,
        ],
    ),
    (
        "PRIVACY",
        "Privacy officer",
        &[Permission::ContactsRead, Permission::ContactsErase],
    ),
];

const FIRST: [&str; 24] = [
    "Oliver", "Amelia", "Jack", "Isla", "Lucas", "Chloé", "Hugo", "Léa", "Lukas", "Mia", "Jonas",
    "Emma", "João", "Ana", "Gabriel", "Júlia", "Liam", "Olivia", "Noah", "Ava", "Mateo", "Lucía",
    "Zoë", "Søren",
];
const LAST: [&str; 24] = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Martin",
    "Bernard",
    "Dubois",
    "Müller",
    "Schmidt",
    "Schneider",
    "Silva",
    "Santos",
    "Oliveira",
    "Johnson",
    "Williams",
    "García",
    "Fernández",
    "López",
    "O'Brien",
    "Nowak",
    "Kowalski",
    "Rossi",
    "Jensen",
    "Ødegaard",
];
const LABELS: [&str; 8] = [
    "VIP",
    "Wholesale",
    "Retail",
    "Newsletter",
    "Partner",
    "Complaint",
    "Prospect",
    "Do not call",
];
const PROTOCOLS: [&str; 4] = ["telegram", "whatsapp", "viber", "webchat"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
const LANGUAGES: [&str; 5] = ["en", "fr", "de", "pt", "es"];
const TIME_ZONES: [&str; 6] = [
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "America/New_York",
    "Europe/Madrid",
];
/// (region, E.164 prefix, digits after the prefix) of mobile ranges of several countries.
const PHONE_PLANS: [(&str, &str, usize); 6] = [
    ("GB", "+447", 9),
    ("FR", "+336", 8),
    ("DE", "+49151", 8),
    ("BR", "+55119", 8),
    ("US", "+1212", 7),
    ("ES", "+346", 8),
];

fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'é' | 'è' => Some('e'),
            'ã' | 'á' => Some('a'),
            'ó' => Some('o'),
            'ñ' => Some('n'),
            'í' => Some('i'),
            'ú' => Some('u'),
            'ü' => Some('u'),
            'ø' | 'Ø' | 'ö' => Some('o'),
            'ë' => Some('e'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn random_phone(rng: &mut StdRng) -> (String, ParsedPhone) {
    loop {
        let (region, prefix, digits) = PHONE_PLANS[rng.random_range(0..PHONE_PLANS.len())];
        let mut e164 = prefix.to_owned();
        for _ in 0..digits {
            e164.push(char::from(b'0' + rng.random_range(0..10u8)));
        }
        let Ok(region) = region.parse::<Region>() else {
            continue;
        };
        let Ok(parsed) = parse_phone(&e164, region) else {
            continue;
        };
        // Store some as entered in national format, as agents type them.
        let raw = if rng.random_bool(0.4) {
            phonenumber::parse(None, &parsed.e164)
                .map(|n| n.format().mode(phonenumber::Mode::National).to_string())
                .unwrap_or_else(|_| parsed.e164.clone())
        } else {
            parsed.e164.clone()
        };
        return (raw, parsed);
    }
}

/// Creates (or finds) the demo domain and users, seeds contacts on first run, and mints tokens.
pub async fn setup(
    database_url: &str,
    keys: &TokenKeys,
    contact_count: usize,
) -> Result<Demo, Error> {
    let mut conn = crate::admin::connect(database_url).await?;
    let (domain, seeded) = match domains::find_by_name(&mut conn, DEMO_DOMAIN).await? {
        Some(d) => (d.id, false),
        None => {
            let region: Region = "GB".parse().map_err(|e| Error::Internal(format!("{e}")))?;
            let id = domains::create(
                &mut conn,
                &domains::NewDomain {
                    name: DEMO_DOMAIN,
                    default_region: region,
                    autolink: false,
                    autolink_shared_numbers: true,
                    fallback_digits: 9,
                },
            )
            .await?;
            (id, true)
        }
    };
    let mut existing = users::list(&mut conn, domain).await?;
    let mut out = Vec::new();
    for (handle, name, permissions) in USERS {
        let id = match existing.iter().position(|u| u.name == name) {
            Some(i) => existing.remove(i).id,
            None => users::create(&mut conn, domain, name).await?,
        };
        out.push(DemoUser {
            handle,
            id,
            name,
            permissions,
            token: keys.mint(domain, id, permissions, DEMO_TOKEN_TTL)?,
        });
    }
    if seeded {
        let owners: Vec<UserId> = out.iter().map(|u| u.id).collect();
        seed_contacts(&mut conn, domain, &owners, contact_count).await?;
    }
    let sample_contact: i64 = contacts::table
        .filter(contacts::domain_id.eq(domain.0))
        .order(contacts::id)
        .select(contacts::id)
        .first(&mut conn)
        .await
        .optional()?
        .unwrap_or(0);
    let sample_number: String = contact_phones::table
        .filter(contact_phones::domain_id.eq(domain.0))
        .filter(contact_phones::contact_id.eq(sample_contact))
        .order(contact_phones::id)
        .select(contact_phones::number)
        .first(&mut conn)
        .await
        .optional()?
        .unwrap_or_default();
    Ok(Demo {
        domain,
        users: out,
        sample_contact,
        sample_number,
        seeded,
    })
}

/// Seeds `count` contacts in batches of multi-row inserts, in one transaction.
pub async fn seed_contacts(
    conn: &mut AsyncPgConnection,
    domain: DomainId,
    owners: &[UserId],
    count: usize,
) -> Result<(), Error> {
    let mut rng = StdRng::seed_from_u64(20_261_124);
    let owners = owners.to_vec();
    conn.transaction(async |conn| {
        let label_rows: Vec<_> = LABELS
            .iter()
            .map(|l| (labels::domain_id.eq(domain.0), labels::name.eq(*l)))
            .collect();
        let label_ids: Vec<i64> = diesel::insert_into(labels::table)
            .values(&label_rows)
            .on_conflict((labels::domain_id, labels::name))
            .do_update()
            .set(labels::name.eq(diesel::upsert::excluded(labels::name)))
            .returning(labels::id)
            .get_results(conn)
            .await?;
        let mut last_phone: Option<(String, ParsedPhone)> = None;
        let mut done = 0;
        while done < count {
            let n = BATCH.min(count - done);
            let mut people = Vec::with_capacity(n);
            for i in done..done + n {
                let first = FIRST[rng.random_range(0..FIRST.len())];
                let last = LAST[rng.random_range(0..LAST.len())];
                let owner = owners[rng.random_range(0..owners.len())];
                people.push((i, first, last, owner));
            }
            let rows: Vec<_> = people
                .iter()
                .map(|(i, first, last, owner)| {
                    (
                        contacts::domain_id.eq(domain.0),
                        contacts::display_name.eq(format!("{first} {last}")),
                        contacts::description.eq(if i % 7 == 0 {
                            "Prefers calls after 18:00.".to_owned()
                        } else {
                            String::new()
                        }),
                        contacts::time_zone.eq(TIME_ZONES[i % TIME_ZONES.len()]),
                        contacts::owner_id.eq(owner.0),
                        contacts::created_by.eq(owner.0),
                        contacts::updated_by.eq(owner.0),
                    )
                })
                .collect();
            let ids: Vec<i64> = diesel::insert_into(contacts::table)
                .values(&rows)
                .returning(contacts::id)
                .get_results(conn)
                .await?;

            let mut phones = Vec::new();
            let mut emails = Vec::new();
            let mut channels = Vec::new();
            let mut contact_label_rows = Vec::new();
            let mut attributes = Vec::new();
            for (&id, (i, first, last, _)) in ids.iter().zip(&people) {
                // Every 40th contact shares the previous contact's number (family, switchboard).
                let phone = match (&last_phone, i % 40 == 39) {
                    (Some(p), true) => p.clone(),
                    _ => random_phone(&mut rng),
                };
                let mut numbers = vec![phone.clone()];
                if i % 5 == 0 {
                    numbers.push(random_phone(&mut rng));
                }
                last_phone = Some(phone);
                for (raw, p) in numbers {
                    phones.push((
                        contact_phones::domain_id.eq(domain.0),
                        contact_phones::contact_id.eq(id),
                        contact_phones::number.eq(raw),
                        contact_phones::e164.eq(p.e164),
                        contact_phones::region.eq(p.region),
                        contact_phones::national_number.eq(p.national_number),
                        contact_phones::digits_reversed.eq(p.digits_reversed),
                    ));
                }
                let address = format!(
                    "{}.{}{}@example.{}",
                    ascii_slug(first),
                    ascii_slug(last),
                    i,
                    ["com", "org", "net"][i % 3]
                );
                emails.push((
                    contact_emails::domain_id.eq(domain.0),
                    contact_emails::contact_id.eq(id),
                    contact_emails::normalized.eq(address.to_lowercase()),
                    contact_emails::address.eq(address),
                ));
                if i % 3 == 0 {
                    let protocol = PROTOCOLS[i % PROTOCOLS.len()];
                    channels.push((
                        contact_messaging_channels::domain_id.eq(domain.0),
                        contact_messaging_channels::contact_id.eq(id),
                        contact_messaging_channels::protocol.eq(protocol),
                        contact_messaging_channels::external_user_id
                            .eq(format!("{protocol}-{}", 100_000 + i)),
                        contact_messaging_channels::display_name
                            .eq(format!("{first} {}.", last.chars().next().unwrap_or('X'))),
                    ));
                }
                let label_count = rng.random_range(0..3usize);
                let mut chosen: Vec<i64> = (0..label_count)
                    .map(|_| label_ids[rng.random_range(0..label_ids.len())])
                    .collect();
                chosen.sort_unstable();
                chosen.dedup();
                for label in chosen {
                    contact_label_rows.push((
                        contact_labels::domain_id.eq(domain.0),
                        contact_labels::contact_id.eq(id),
                        contact_labels::label_id.eq(label),
                    ));
                }
                for (key, value) in [
                    ("crm_id", format!("CRM-{:06}", i + 1)),
                    ("tier", TIERS[i % TIERS.len()].to_owned()),
                    ("language", LANGUAGES[i % LANGUAGES.len()].to_owned()),
                ] {
                    attributes.push((
                        contact_attributes::domain_id.eq(domain.0),
                        contact_attributes::contact_id.eq(id),
                        contact_attributes::key.eq(key),
                        contact_attributes::value.eq(value),
                    ));
                }
            }
            diesel::insert_into(contact_phones::table)
                .values(&phones)
                .execute(conn)
                .await?;
            diesel::insert_into(contact_emails::table)
                .values(&emails)
                .execute(conn)
                .await?;
            if !channels.is_empty() {
                diesel::insert_into(contact_messaging_channels::table)
                    .values(&channels)
                    .execute(conn)
                    .await?;
            }
            if !contact_label_rows.is_empty() {
                diesel::insert_into(contact_labels::table)
                    .values(&contact_label_rows)
                    .execute(conn)
                    .await?;
            }
            diesel::insert_into(contact_attributes::table)
                .values(&attributes)
                .execute(conn)
                .await?;
            done += n;
            tracing::info!(seeded = done, of = count, "seeding demo contacts");
        }
        Ok::<(), Error>(())
    })
    .await
}

/// The text `--demo` prints: tokens, ids and grpcurl commands to paste. `random_secret` says
/// whether the tokens die with this run (no `CLIENT_INFO_JWT_SECRET`). Every run prints a
/// fresh interaction id (`CALL`), so the walkthrough can be run again.
pub fn instructions(demo: &Demo, listen: &str, random_secret: bool) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "\nclient-info demo: domain {} ({}), {} users.\n",
        demo.domain,
        if demo.seeded {
            "seeded now"
        } else {
            "seeded earlier"
        },
        demo.users.len()
    ));
    if random_secret {
        s.push_str(
            "Tokens are signed with a random secret for this run only. To keep them valid across \
             restarts, and to mint more with `admin mint-token`, start the demo with \
             CLIENT_INFO_JWT_SECRET set (it is honoured with --demo).\n",
        );
    } else {
        s.push_str(
            "Tokens are signed with CLIENT_INFO_JWT_SECRET: `admin mint-token` mints more that work here.\n",
        );
    }
    s.push_str("Paste into a shell (tokens valid 12 hours):\n\n");
    for u in &demo.users {
        let perms: Vec<_> = u.permissions.iter().map(|p| p.as_str()).collect();
        s.push_str(&format!("# {}: {}\n", u.name, perms.join(", ")));
        s.push_str(&format!(
            "export {h}_TOKEN='{t}' {h}_ID={id}\n",
            h = u.handle,
            t = u.token,
            id = u.id
        ));
    }
    let call = format!("call-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S%.3f"));
    let c = demo.sample_contact;
    let number = &demo.sample_number;
    s.push_str(&format!(
        "export CALL={call} NUMBER='{number}' CONTACT={c}\n\
         G=.ci/tools/venv/bin/grpcurl   # installed by: bash .ci/install-tools\n\n\
         Try:\n\n\
         $G -plaintext {listen} list\n\
         $G -plaintext -H \"authorization: Bearer $ALICE_TOKEN\" -d '{{\"contact_id\": '$CONTACT'}}' {listen} clientinfo.v1.ContactSearchService/GetContact\n\
         $G -plaintext -H \"authorization: Bearer $BOB_TOKEN\" -d '{{\"contact_id\": '$CONTACT'}}' {listen} clientinfo.v1.ContactSearchService/GetContact   # PERMISSION_DENIED: Bob has no CRM access\n\n\
         # A call from that contact's number reaches Alice; she answers and reads her panel:\n\
         $G -plaintext -H \"authorization: Bearer $ROUTING_TOKEN\" -d '{{\"interaction_id\": \"'$CALL'\", \"kind\": \"INTERACTION_KIND_CALL\", \"direction\": \"INTERACTION_DIRECTION_INBOUND\", \"destination\": {{\"call\": {{\"number\": \"'\"$NUMBER\"'\"}}}}, \"agent_user_id\": '$ALICE_ID', \"queue\": {{\"id\": \"q1\", \"name\": \"Support\"}}, \"variables\": [{{\"key\": \"lang\", \"value\": \"en\"}}]}}' {listen} clientinfo.v1.InteractionsService/OfferInteraction\n\
         $G -plaintext -H \"authorization: Bearer $ROUTING_TOKEN\" -d '{{\"interaction_id\": \"'$CALL'\", \"agent_user_id\": '$ALICE_ID'}}' {listen} clientinfo.v1.InteractionsService/AcceptInteraction\n\
         $G -plaintext -H \"authorization: Bearer $ALICE_TOKEN\" -d '{{\"interaction_id\": \"'$CALL'\"}}' {listen} clientinfo.v1.ClientInfoService/GetClientInfo\n\n\
         More in the README (its examples use these variables).\n"
    ));
    s
}
