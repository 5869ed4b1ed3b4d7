//! Phone numbers: parsing and normalisation in a domain's region (`parse_phone`, the
//! identification's `parse_caller_number`, `Region` from its code).
//!
//! Input: two bytes that name the default region (`Region::from_str`; when they name none, a
//! region of [`client_info_fuzz::REGIONS`]), then the number as typed.
//! Properties: nothing panics; a parsed number is `+` and at most 15 digits (E.164), its keys agree
//! with it, and its E.164 form parses back to itself in its default region and in every other
//! (normalise(parse(x)) is a fixed point); identification keeps a valid number as
//! `parse_phone` does, and an invalid one in the same shape; every refusal is one of the documented [`PhoneError`]s.
#![no_main]

use client_info_fuzz::{REGIONS, region_and_rest};
use client_info_server::domain::phone::{
    MAX_E164_DIGITS, MAX_PHONE_INPUT_LEN, ParsedPhone, PhoneError, parse_caller_number, parse_phone,
};
use libfuzzer_sys::fuzz_target;

fn check_shape(input: &str, p: &ParsedPhone, max_digits: usize) {
    let digits = p.e164.strip_prefix('+').expect("E.164 starts with +");
    assert!(
        !digits.is_empty()
            && digits.len() <= max_digits
            && digits.bytes().all(|b| b.is_ascii_digit()),
        "{input:?} -> {p:?}"
    );
    assert!(digits.ends_with(&p.national_number), "{input:?} -> {p:?}");
    assert_eq!(
        p.digits_reversed,
        digits.chars().rev().collect::<String>(),
        "{input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let (region, rest) = region_and_rest(data);
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    match parse_phone(input, region) {
        Ok(p) => {
            check_shape(input, &p, MAX_E164_DIGITS);
            // A fixed point: the stored form reads as itself, in its region and in any other.
            for other in [region, REGIONS[0], REGIONS[rest.len() % REGIONS.len()]] {
                let again = parse_phone(&p.e164, other)
                    .unwrap_or_else(|e| panic!("{input:?} -> {} -> {e}", p.e164));
                assert_eq!(
                    again.e164, p.e164,
                    "{input:?} in {region}, again in {other}"
                );
                assert_eq!(again.region, p.region, "{input:?}");
                assert_eq!(again.national_number, p.national_number, "{input:?}");
                assert!(!again.ninth_digit_added, "{input:?}");
            }
        }
        Err(PhoneError::Empty) => assert!(input.trim().is_empty()),
        Err(PhoneError::TooLong) => assert!(input.trim().chars().count() > MAX_PHONE_INPUT_LEN),
        Err(PhoneError::BadCharacters | PhoneError::Unparseable) => {}
        Err(PhoneError::Invalid { region: r, e164 }) => {
            assert_eq!(r, region);
            assert!(e164.starts_with('+'), "{input:?} -> {e164:?}");
        }
    }
    // Identification keeps a number that parses but is not valid (to match stored ones); a
    // valid one it keeps as `parse_phone` does.
    match (
        parse_caller_number(input, region),
        parse_phone(input, region),
    ) {
        (Ok(c), Ok(p)) => assert_eq!(c, p, "caller {input:?}"),
        (Ok(c), Err(_)) => check_shape(input, &c, 20),
        (Err(e), Ok(_)) => panic!("caller {input:?} refused: {e}"),
        (Err(_), Err(_)) => {}
    }
});
