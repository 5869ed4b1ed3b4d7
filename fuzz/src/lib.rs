//! Helpers shared by the fuzz targets of `fuzz_targets/`: how an input's first bytes pick a
//! region, and the check every refusal must pass.

use std::sync::LazyLock;

use client_info_server::domain::phone::Region;
use client_info_server::error::Error;

/// Regions a target falls back to when an input's first bytes name none: the demo's, regions
/// with a trunk `0` or international prefixes of their own, North America's shared `+1`,
/// Italian leading zeros, the Brazilian ninth digit, Russia and Kazakhstan's shared `+7`, a
/// few with short or long numbers.
pub static REGIONS: LazyLock<Vec<Region>> = LazyLock::new(|| {
    [
        "GB", "US", "CA", "FR", "DE", "IT", "BR", "RU", "KZ", "IN", "CN", "JP", "AU", "NZ", "MX",
        "AR", "ZA", "NG", "CI", "AE", "SG", "HK", "SE", "NL", "ES", "PT", "CH", "AT", "IL", "KR",
        "GG", "VA",
    ]
    .iter()
    .map(|c| c.parse().expect("a known region"))
    .collect()
});

/// The default region named by `data`'s first two bytes (a code such as `gb` or `GB`,
/// `Region::from_str`), or else one of [`REGIONS`] picked by the first byte; and the rest.
pub fn region_and_rest(data: &[u8]) -> (Region, &[u8]) {
    let (head, rest) = data.split_at(data.len().min(2));
    let named = std::str::from_utf8(head)
        .ok()
        .and_then(|s| s.parse::<Region>().ok());
    let region = named.unwrap_or_else(|| {
        let i = head.first().map_or(0, |b| usize::from(*b));
        REGIONS[i % REGIONS.len()]
    });
    (region, rest)
}

/// A refusal of outside input must be precise: INVALID_ARGUMENT naming every field at fault
/// with a reason, never INTERNAL or another kind.
pub fn assert_precise(what: &str, err: Error) {
    match &err {
        Error::InvalidArgument(violations) => {
            assert!(!violations.is_empty(), "{what}: no violation named");
            for v in violations {
                assert!(
                    !v.field.is_empty(),
                    "{what}: a violation names no field: {v:?}"
                );
                assert!(
                    !v.description.is_empty(),
                    "{what}: a violation gives no reason: {v:?}"
                );
            }
        }
        other => panic!("{what}: refused with {other:?}, not INVALID_ARGUMENT"),
    }
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{what}");
}

/// Asserts that the codec's refusal of bytes that are not a request message is precise:
/// INVALID_ARGUMENT, `ErrorInfo` reason MALFORMED_MESSAGE, one BadRequest violation with a field
/// and a reason.
pub fn assert_malformed(what: &str, status: &tonic::Status) {
    use tonic_types::StatusExt as _;
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "{what}: {status:?}"
    );
    let details = status.get_error_details();
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some(client_info_proto::codec::MALFORMED_MESSAGE),
        "{what}: {status:?}"
    );
    let violations = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    assert!(
        violations.len() == 1
            && !violations[0].field.is_empty()
            && !violations[0].description.is_empty(),
        "{what}: {violations:?}"
    );
}

/// Reads fixed-size values off the front of an input, zero when it runs out.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `N` bytes (zero-padded).
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = self.0.len().min(N);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }

    /// The next little-endian `i64`.
    pub fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.bytes())
    }

    /// What is left, as text (invalid UTF-8 replaced).
    pub fn rest_text(&mut self) -> String {
        let s = String::from_utf8_lossy(self.0).into_owned();
        self.0 = &[];
        s
    }
}

/// `token` with the character at `at` (modulo its length) replaced by `by` (an ASCII
/// character; a control character becomes a `.`), or with `by` inserted or the character
/// removed; `None` when that leaves it unchanged.
pub fn mutate(token: &str, at: u16, by: u8, how: u8) -> Option<String> {
    let mut bytes = token.as_bytes().to_vec();
    if bytes.is_empty() {
        return None;
    }
    let i = usize::from(at) % bytes.len();
    let c = if (0x20..0x7f).contains(&by) { by } else { b'.' };
    match how % 3 {
        0 => bytes[i] = c,
        1 => bytes.insert(i, c),
        _ => {
            bytes.remove(i);
        }
    }
    let out = String::from_utf8(bytes).ok()?;
    (out != token).then_some(out)
}
