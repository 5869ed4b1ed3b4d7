//! Deterministic test data: contact `i` always has the same name, numbers, e-mail, identity,
//! labels and attributes, so scenarios (and the pgbench floor) can pick existing values by
//! index without reading them back.

use client_info_sdk::contacts::{email, messaging, phone};
use client_info_sdk::pb;

/// First names (several languages, some accented).
pub const FIRST: [&str; 24] = [
    "Oliver", "Amelia", "Jack", "Isla", "Lucas", "Chloé", "Hugo", "Léa", "Lukas", "Mia", "Jonas",
    "Emma", "João", "Ana", "Gabriel", "Júlia", "Liam", "Olivia", "Noah", "Ava", "Mateo", "Lucía",
    "Zoë", "Søren",
];
/// Last names.
pub const LAST: [&str; 24] = [
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
const LABELS: [&str; 6] = [
    "VIP",
    "Wholesale",
    "Retail",
    "Newsletter",
    "Partner",
    "Prospect",
];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

/// Every 50th contact shares the previous contact's number (families, switchboards).
fn number_owner(i: u64) -> u64 {
    if i % 50 == 49 { i - 1 } else { i }
}

/// The E.164 number of contact `i` (mobiles of GB, FR, DE and BR in turn).
pub fn e164(i: u64) -> String {
    let i = number_owner(i);
    let k = i / 4;
    match i % 4 {
        0 => format!("+447400{:06}", k % 1_000_000),
        1 => format!("+3361{:07}", k % 10_000_000),
        2 => format!("+49151{:08}", k),
        _ => format!("+55119{:08}", k),
    }
}

/// The number of contact `i` as an agent or a network might write it (`variant` picks one).
pub fn written(i: u64, variant: u64) -> String {
    let e = e164(i);
    let digits = &e[1..];
    match (variant % 4, e.starts_with("+44")) {
        (0, _) => e.clone(),
        (1, _) => format!("00{digits}"),
        (2, true) => format!("0{} {}", &digits[2..6], &digits[6..]),
        (2, false) => format!("+{} {} {}", &digits[..2], &digits[2..5], &digits[5..]),
        _ => format!("+{}-{}-{}", &digits[..2], &digits[2..6], &digits[6..]),
    }
}

/// The display name of contact `i`.
pub fn name(i: u64) -> String {
    format!(
        "{} {}",
        FIRST[(i % 24) as usize],
        LAST[((i / 24) % 24) as usize]
    )
}

/// A first name (contact `i`'s; a twenty-fourth of the contacts have each).
pub fn first_name(i: u64) -> &'static str {
    FIRST[(i % 24) as usize]
}

/// A surname (the last name of contact `i * 24`).
pub fn surname(i: u64) -> &'static str {
    LAST[(i % 24) as usize]
}

/// The words of the names that forgive a typo (5 letters or more; not O'Brien's "Brien"),
/// first names then surnames.
pub fn typo_words() -> Vec<&'static str> {
    FIRST
        .iter()
        .chain(LAST.iter())
        .copied()
        .filter(|w| w.chars().count() >= 5 && !w.contains('\''))
        .collect()
}

/// A typo of a name word ([`typo_words`]) and that word: in turn two middle letters swapped
/// ("Ameila"), a middle letter dropped ("Amlia"), changed ("Amxlia") or one added ("Amexlia"),
/// so that no typo is a piece of a name (the literal bands find nothing). Every one differs
/// from its word (a unit test checks it).
pub fn name_typo(i: u64) -> (String, &'static str) {
    let words = typo_words();
    let n = words.len() as u64;
    let word = words[(i % n) as usize];
    let mut c: Vec<char> = word.chars().collect();
    let p = c.len() / 2;
    match (i / n) % 4 {
        0 => {
            // Two different letters ("Müller" swaps "le", not "ll").
            let at = (p..c.len()).find(|&k| c[k - 1] != c[k]).unwrap_or(p);
            c.swap(at - 1, at);
        }
        1 => {
            c.remove(p);
        }
        2 => c[p] = if c[p] == 'x' { 'q' } else { 'x' },
        _ => c.insert(p, 'x'),
    }
    (c.into_iter().collect(), word)
}

/// How many distinct [`name_typo`]s there are.
pub fn name_typos() -> u64 {
    typo_words().len() as u64 * 4
}

/// A full name with a typo in each word that forgives one ("Amlia Smiht"; a short first name
/// as it is: "Mia Smiht").
pub fn full_name_typo(i: u64) -> String {
    let first = FIRST[(i % 24) as usize];
    let last = LAST[((i / 24) % 24) as usize];
    let typo = |w: &'static str, k: u64| {
        let words = typo_words();
        match words.iter().position(|x| *x == w) {
            Some(at) => name_typo(at as u64 + words.len() as u64 * (k % 4)).0,
            None => w.to_owned(),
        }
    };
    format!("{} {}", typo(first, i), typo(last, i / 7))
}

/// A name query that matches nobody: 6 consonants no name holds, none a typo of a name word.
pub fn nobody(i: u64) -> String {
    const LETTERS: [char; 8] = ['q', 'x', 'z', 'v', 'k', 'w', 'f', 'p'];
    (0..6)
        .map(|k| LETTERS[((i >> (3 * k)) % 8) as usize])
        .collect()
}

/// The messaging identity of contact `i`, which every third contact has.
pub fn identity(i: u64) -> Option<String> {
    i.is_multiple_of(3).then(|| format!("tg-{i}"))
}

/// The CRM id attribute of contact `i`.
pub fn crm_id(i: u64) -> String {
    format!("CRM-{i:07}")
}

/// The `tier` attribute of contact `i`.
pub fn tier(i: u64) -> &'static str {
    TIERS[(i % 3) as usize]
}

/// The import record of contact `i`.
pub fn record(i: u64) -> pb::ImportContactsRequest {
    let mut communications = vec![phone(written(i, i)), email(format!("user{i}@example.com"))];
    if let Some(id) = identity(i) {
        communications.push(messaging("telegram", id, name(i)));
    }
    let labels = (0..(i % 3))
        .map(|k| LABELS[((i + k * 2) % 6) as usize].to_owned())
        .collect();
    pb::ImportContactsRequest {
        display_name: name(i),
        description: if i.is_multiple_of(7) {
            "Prefers calls after 18:00.".into()
        } else {
            String::new()
        },
        time_zone: "Europe/London".into(),
        owner_id: 0,
        labels,
        attributes: vec![
            pb::Attribute {
                key: "crm_id".into(),
                value: crm_id(i),
            },
            pb::Attribute {
                key: "tier".into(),
                value: tier(i).into(),
            },
        ],
        communications,
    }
}

#[cfg(test)]
mod typo_tests {
    #[test]
    fn every_typo_is_one_edit_from_its_word_and_no_name_word() {
        let words: Vec<String> = super::FIRST
            .iter()
            .chain(super::LAST.iter())
            .map(|w| w.to_lowercase())
            .collect();
        for i in 0..super::name_typos() {
            let (typo, word) = super::name_typo(i);
            let typo = typo.to_lowercase();
            assert_ne!(typo, word.to_lowercase(), "{i}");
            assert!(
                !words.iter().any(|w| w.contains(typo.as_str())),
                "{typo} is a piece of a name"
            );
        }
    }
}
