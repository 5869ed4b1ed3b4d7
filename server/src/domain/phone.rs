//! Phone number normalisation with libphonenumber's rules (the `phonenumber` crate).
//!
//! A number is parsed in the domain's default region, so a national number with a trunk `0`,
//! an international number with `+`, `00` or `011`, and any mix of spaces, dashes, dots and
//! brackets all reach the same E.164 form. Brazilian mobiles written in the old 8-digit form
//! (before the ninth digit was added) are brought to the current 9-digit form.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;

/// Longest raw input accepted.
pub const MAX_PHONE_INPUT_LEN: usize = 64;

/// Most digits of an E.164 number (country code and national number), as ITU-T E.164 and
/// the database's check on stored numbers say.
pub const MAX_E164_DIGITS: usize = 15;

/// A region (ISO 3166-1 alpha-2) that libphonenumber knows, used to parse national numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// The region's two-letter code.
    pub fn code(self) -> String {
        let id = self.0;
        id.as_ref().to_owned()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// The region code is not one libphonenumber knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region {0:?} (expected an ISO 3166-1 alpha-2 code such as GB)")]
pub struct UnknownRegion(pub String);

impl FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(UnknownRegion(s.to_owned()));
        }
        upper
            .parse::<country::Id>()
            .map(Region)
            .map_err(|_| UnknownRegion(s.to_owned()))
    }
}

/// A parsed, valid phone number with the keys identification and search match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPhone {
    /// `+` and up to 15 digits.
    pub e164: String,
    /// The number's own region (ISO code), empty when libphonenumber cannot tell.
    pub region: String,
    /// The national significant number (digits, with Italian-style leading zeros).
    pub national_number: String,
    /// The E.164 digits reversed: a last-N-digits match is then an index prefix scan.
    pub digits_reversed: String,
    /// True when an old 8-digit Brazilian mobile was brought to the 9-digit form.
    pub ninth_digit_added: bool,
}

/// Why a number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing given.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_PHONE_INPUT_LEN`].
    #[error("must be at most {MAX_PHONE_INPUT_LEN} characters")]
    TooLong,
    /// Letters or other characters that are not part of a phone number.
    #[error("may only hold digits, a leading +, spaces, dashes, dots, slashes and brackets")]
    BadCharacters,
    /// libphonenumber could not read a number from it.
    #[error("is not a phone number")]
    Unparseable,
    /// It parses, but no such number exists in its region's numbering plan.
    #[error("is not a valid phone number (read in region {region} as {e164})")]
    Invalid {
        /// The default region it was read in.
        region: Region,
        /// What it was read as.
        e164: String,
    },
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The national significant number: digits, with Italian-style leading zeros.
fn national_significant(number: &phonenumber::PhoneNumber) -> String {
    let national = number.national();
    format!(
        "{}{}",
        "0".repeat(usize::from(national.zeros())),
        national.value()
    )
}

/// E.164 is by definition `+`, the country code and the national significant number. Written
/// here rather than through the crate's formatter, which picks a national format pattern first
/// even for E.164 (about 4 % of a destination search's server CPU, for nothing).
fn e164_of(number: &phonenumber::PhoneNumber, national_number: &str) -> String {
    format!("+{}{national_number}", number.code().value())
}

/// The region a number written with `+` is read in first. The crate strips a trunk prefix
/// from the national number even after a country code: the default region's (`+39 0471
/// 123456` in GB lost the leading zero of an Italian fixed line), or with no default region
/// the number's own (`+7 800 000 59 41` lost Russia's `8`), so the E.164 form one domain stores
/// did not read back as itself in another. Italy has no trunk prefix: read in it, the digits
/// after the country code stay as written, as E.164 has them. A number that is not valid so
/// is then read with its own trunk prefix stripped (`+44 (0)20 7946 0018`), then in the
/// default region.
const AS_WRITTEN: country::Id = country::Id::IT;

/// The parsed form of `number`, whose region (`country().id()`, empty when none) is `region`.
fn build(
    number: &phonenumber::PhoneNumber,
    region: Option<String>,
    ninth_digit_added: bool,
) -> ParsedPhone {
    let national_number = national_significant(number);
    let e164 = e164_of(number, &national_number);
    let digits_reversed: String = digits(&e164).chars().rev().collect();
    ParsedPhone {
        region: region.unwrap_or_default(),
        e164,
        national_number,
        digits_reversed,
        ninth_digit_added,
    }
}

/// Brazil: a 10-digit national mobile number (2-digit area code, then 8 digits starting 6-9) is
/// the old form of today's 11-digit number with a `9` after the area code.
fn brazil_with_ninth_digit(number: &phonenumber::PhoneNumber) -> Option<ParsedPhone> {
    if number.code().value() != 55 {
        return None;
    }
    let national = number.national().value().to_string();
    let subscriber_first = national.as_bytes().get(2).copied()?;
    if national.len() != 10 || !(b'6'..=b'9').contains(&subscriber_first) {
        return None;
    }
    let fixed = format!("+55{}9{}", &national[..2], &national[2..]);
    let fixed = phonenumber::parse(None, fixed).ok()?;
    let check = super::phone_validity::check(&fixed);
    check.valid.then(|| build(&fixed, check.region, true))
}

/// Parses `input` in `default_region` and normalises it.
pub fn parse_phone(input: &str, default_region: Region) -> Result<ParsedPhone, PhoneError> {
    let raw = input.trim();
    if raw.is_empty() {
        return Err(PhoneError::Empty);
    }
    if raw.chars().count() > MAX_PHONE_INPUT_LEN {
        return Err(PhoneError::TooLong);
    }
    let allowed = |c: char| c.is_ascii_digit() || " -.()/+\u{a0}".contains(c);
    if !raw.chars().all(allowed) || raw.chars().skip(1).any(|c| c == '+') {
        return Err(PhoneError::BadCharacters);
    }
    let all_digits = digits(raw);
    if all_digits.len() < 3 {
        return Err(PhoneError::Unparseable);
    }

    let mut candidates: Vec<String> = vec![raw.to_owned()];
    // International prefixes of other regions than the default one (libphonenumber only strips
    // the default region's own): 00 (most of the world) and 011 (North America).
    if !raw.starts_with('+') {
        for prefix in ["011", "00"] {
            if let Some(rest) = all_digits.strip_prefix(prefix) {
                candidates.push(format!("+{rest}"));
            }
        }
    }

    let mut first_parsed: Option<phonenumber::PhoneNumber> = None;
    let national = [Some(default_region.0)];
    let international = [Some(AS_WRITTEN), None, Some(default_region.0)];
    let readings = candidates.iter().flat_map(|candidate| {
        let regions = if candidate.starts_with('+') {
            &international[..]
        } else {
            &national[..]
        };
        regions.iter().map(move |r| (*r, candidate))
    });
    for (reading_region, candidate) in readings {
        let Ok(number) = phonenumber::parse(reading_region, candidate) else {
            continue;
        };
        // The region comes with validity: the crate's `country().id()` would match the
        // region patterns again, through its regex cache (a third of the parse's CPU).
        let check = super::phone_validity::check(&number);
        if check.valid {
            // Some regions' patterns allow national numbers too long for E.164 (a French
            // `974...` of 14 digits): such a number is not one, and would break the stored
            // numbers' check (a FAILED_PRECONDITION for a bad input).
            let parsed = build(&number, check.region, false);
            if parsed.e164.len() <= MAX_E164_DIGITS + 1 {
                return Ok(parsed);
            }
        }
        if let Some(fixed) = brazil_with_ninth_digit(&number) {
            return Ok(fixed);
        }
        first_parsed.get_or_insert(number);
    }
    match first_parsed {
        Some(number) => Err(PhoneError::Invalid {
            region: default_region,
            e164: e164_of(&number, &national_significant(&number)),
        }),
        None => Err(PhoneError::Unparseable),
    }
}

/// Parses a number as delivered by a network, for identification: like [`parse_phone`], but a
/// number that parses yet is not valid in the numbering plan (outdated metadata, a new range)
/// is still returned, so that it can match stored numbers.
pub fn parse_caller_number(input: &str, default_region: Region) -> Result<ParsedPhone, PhoneError> {
    match parse_phone(input, default_region) {
        Err(PhoneError::Invalid { e164, .. }) => phonenumber::parse(Some(AS_WRITTEN), &e164)
            .map(|n| build(&n, super::phone_validity::check(&n).region, false))
            .map_err(|_| PhoneError::Unparseable),
        other => other,
    }
}

/// Other E.164 forms that are the same line as `phone` (national variants). Brazil: the form
/// without the ninth digit of a 9-digit mobile, so contacts stored before the change still match.
pub fn national_variants(phone: &ParsedPhone) -> Vec<String> {
    let Some(national) = phone.e164.strip_prefix("+55") else {
        return Vec::new();
    };
    if national.len() == 11 && national.as_bytes()[2] == b'9' {
        let old = format!("+55{}{}", &national[..2], &national[3..]);
        if national
            .as_bytes()
            .get(3)
            .is_some_and(|b| (b'6'..=b'9').contains(b))
        {
            return vec![old];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Region {
        code.parse().expect("known region")
    }

    fn e164(input: &str, default_region: &str) -> String {
        parse_phone(input, region(default_region))
            .unwrap_or_else(|e| panic!("{input:?} in {default_region}: {e}"))
            .e164
    }

    #[test]
    fn e164_is_the_formatters_e164() {
        // Italian fixed lines keep their leading zero; numbers of several lengths, countries
        // with one and with several regions, a non-geographic code.
        for raw in [
            "+390612345678",
            "+39 0471 123456",
            "+393123456789",
            "+447400123456",
            "+442079460000",
            "+33628230455",
            "+4915112345678",
            "+5511987654321",
            "+12025550123",
            "+14165550123",
            "+81312345678",
            "+8613812345678",
            "+971501234567",
            "+79161234567",
            "+870773111632",
            "+225 07 12 34 56 78",
        ] {
            let n = phonenumber::parse(None, raw).expect(raw);
            assert_eq!(
                e164_of(&n, &national_significant(&n)),
                n.format().mode(phonenumber::Mode::E164).to_string(),
                "{raw}"
            );
        }
    }

    #[test]
    fn every_format_reaches_the_same_e164() {
        for input in [
            "06 28 23 04 55",
            "0628230455",
            "+33628230455",
            "+33 6 28 23 04 55",
            "0033 6 28 23 04 55",
            "011 33 6 28 23 04 55",
            "+33 (0)6 28-23-04-55",
            "06.28.23.04.55",
        ] {
            assert_eq!(e164(input, "FR"), "+33628230455", "{input}");
        }
        // The same French number dialled from a British or an American domain.
        assert_eq!(e164("00 33 6 28 23 04 55", "GB"), "+33628230455");
        assert_eq!(e164("011 33 6 28 23 04 55", "US"), "+33628230455");
        assert_eq!(e164("00 33 6 28 23 04 55", "US"), "+33628230455");
    }

    #[test]
    fn international_numbers_read_the_same_in_every_region() {
        // Found by fuzz/ (target `phone`): the leading zero of an Italian fixed line was lost
        // when the default region has a trunk prefix of its own.
        for (raw, expected) in [
            ("+39 0471 123456", "+390471123456"),
            ("+390612345678", "+390612345678"),
            ("0039 0471 123456", "+390471123456"),
        ] {
            for default_region in ["IT", "GB", "FR", "DE", "BR"] {
                assert_eq!(
                    e164(raw, default_region),
                    expected,
                    "{raw} in {default_region}"
                );
            }
        }
        assert_eq!(e164("011 39 0471 123456", "US"), "+390471123456");
        // A Russian toll-free number starts with the digit that is Russia's trunk prefix.
        for default_region in ["RU", "GB", "IT"] {
            assert_eq!(e164("+7 800 000 59 41", default_region), "+78000005941");
        }
        // A trunk prefix written in brackets after the country code is still dropped.
        assert_eq!(e164("+44 (0)20 7946 0018", "FR"), "+442079460018");
    }

    #[test]
    fn numbers_longer_than_e164_allows_are_invalid() {
        // Found by fuzz/ (target `phone`): valid by the French patterns, 16 digits in E.164,
        // refused by the database's check when stored.
        let fr = region("FR");
        assert!(matches!(
            parse_phone("974  0)6 20-26527-57", fr),
            Err(PhoneError::Invalid { .. })
        ));
    }

    #[test]
    fn national_numbers_use_the_default_region() {
        assert_eq!(e164("020 7946 0018", "GB"), "+442079460018");
        assert_eq!(e164("(202) 555-0143", "US"), "+12025550143");
        assert_eq!(e164("202-555-0143", "US"), "+12025550143");
    }

    #[test]
    fn brazilian_mobiles_gain_the_ninth_digit() {
        let new = parse_phone("+55 11 98765-4321", region("BR")).expect("valid");
        assert_eq!(new.e164, "+5511987654321");
        assert!(!new.ninth_digit_added);
        let old = parse_phone("(11) 8765-4321", region("BR")).expect("valid");
        assert_eq!(old.e164, "+5511987654321");
        assert!(old.ninth_digit_added);
        assert_eq!(national_variants(&new), vec!["+551187654321".to_owned()]);
    }

    #[test]
    fn keys_for_fallback_matching() {
        let p = parse_phone("07400 123456", region("GB")).expect("valid");
        assert_eq!(p.e164, "+447400123456");
        assert_eq!(p.region, "GB");
        assert_eq!(p.national_number, "7400123456");
        assert_eq!(p.digits_reversed, "654321004744");
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        let gb = region("GB");
        assert_eq!(parse_phone("", gb), Err(PhoneError::Empty));
        assert_eq!(parse_phone("   ", gb), Err(PhoneError::Empty));
        assert_eq!(parse_phone("call me", gb), Err(PhoneError::BadCharacters));
        assert_eq!(parse_phone("12+34", gb), Err(PhoneError::BadCharacters));
        assert_eq!(parse_phone("12", gb), Err(PhoneError::Unparseable));
        assert!(matches!(
            parse_phone("+44 1", gb),
            Err(PhoneError::Invalid { .. } | PhoneError::Unparseable)
        ));
        assert!(matches!(
            parse_phone("0000000000", gb),
            Err(PhoneError::Invalid { .. } | PhoneError::Unparseable)
        ));
        assert_eq!(parse_phone(&"1".repeat(65), gb), Err(PhoneError::TooLong));
    }

    #[test]
    fn caller_numbers_outside_the_plan_still_parse() {
        let gb = region("GB");
        assert!(parse_phone("+44 7700 900123", gb).is_err());
        let p = parse_caller_number("+44 7700 900123", gb).expect("parses");
        assert_eq!(p.e164, "+447700900123");
        assert_eq!(
            parse_caller_number("abc", gb),
            Err(PhoneError::BadCharacters)
        );
    }

    #[test]
    fn regions_parse_case_insensitively() {
        assert_eq!(region("gb").code(), "GB");
        assert!("XX".parse::<Region>().is_err());
        assert!("GBR".parse::<Region>().is_err());
    }
}
