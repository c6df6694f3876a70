//! Bybit v5 request signing (pure functions): HMAC-SHA256 in lowercase hex over the exact bytes
//! sent. REST: `timestamp + api_key + recv_window + (query string | JSON body)`; the private
//! WebSocket's auth: `"GET/realtime" + expires`. The bot signs with these and the venue checks
//! with the same functions; `tests/fixtures/bybit/private/signing_vectors.json` (pybit's own
//! output) holds them to Bybit's rule.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bybit's default `X-BAPI-RECV-WINDOW`, in ms.
pub const RECV_WINDOW_MS_DEFAULT: u64 = 5_000;
/// A timestamp may run this far ahead of the server's clock (Bybit: `timestamp < server_time +
/// 1000`).
pub const AHEAD_MS_MAX: u64 = 1_000;

/// Lowercase hex of HMAC-SHA256(secret, message).
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    // Any key length is valid for HMAC; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    for b in bytes {
        out.push(char::from_digit((b >> 4) as u32, 16).expect("nibble"));
        out.push(char::from_digit((b & 0xf) as u32, 16).expect("nibble"));
    }
    out
}

/// The signature of a REST request: `payload` is the query string of a GET or the JSON body of
/// a POST, byte for byte as sent.
pub fn rest_signature(
    secret: &str,
    timestamp_ms: u64,
    api_key: &str,
    recv_window_ms: u64,
    payload: &str,
) -> String {
    let message = format!("{timestamp_ms}{api_key}{recv_window_ms}{payload}");
    hmac_sha256_hex(secret.as_bytes(), message.as_bytes())
}

/// The signature of the private WebSocket's `op: auth` for `expires` (ms).
pub fn ws_auth_signature(secret: &str, expires_ms: u64) -> String {
    hmac_sha256_hex(
        secret.as_bytes(),
        format!("GET/realtime{expires_ms}").as_bytes(),
    )
}

/// Why a timestamp is outside Bybit's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutsideWindow;

/// Bybit's acceptance rule: `server_time - recv_window <= timestamp < server_time + 1000`.
pub fn check_window(
    server_ms: u64,
    timestamp_ms: u64,
    recv_window_ms: u64,
) -> Result<(), OutsideWindow> {
    let earliest = server_ms.saturating_sub(recv_window_ms);
    let latest = server_ms.saturating_add(AHEAD_MS_MAX);
    if timestamp_ms >= earliest && timestamp_ms < latest {
        Ok(())
    } else {
        Err(OutsideWindow)
    }
}

/// Compares two signatures without an early exit on the first differing byte.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bybits_half_open_interval() {
        assert!(check_window(10_000, 5_000, 5_000).is_ok());
        assert!(check_window(10_000, 4_999, 5_000).is_err());
        assert!(check_window(10_000, 10_999, 5_000).is_ok());
        assert!(check_window(10_000, 11_000, 5_000).is_err());
        assert!(check_window(0, u64::MAX, 5_000).is_err());
    }

    #[test]
    fn signatures_compare_by_value() {
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
