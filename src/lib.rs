//! Helpers shared by the top-level tests and benches: where the fixtures live, and small
//! reference implementations written independently of keel-core, to check it against.

use std::path::PathBuf;

/// The repository's byte-exact copy of the Bybit fixtures (`tests/fixtures/bybit`, see its
/// PROVENANCE.md), or `$KEEL_FIXTURES` to run the same tests on another set.
pub fn fixtures_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("KEEL_FIXTURES") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bybit")
}

/// Every `*.jsonl` capture under `ws/`, sorted.
pub fn ws_captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = fixtures_dir().join("ws");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let p = e.expect("readable dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "no captures under {}",
        fixtures_dir().display()
    );
    out
}

/// Canonical decimal text by string manipulation alone: no exponent, no trailing zeros after
/// the point, no trailing point, no leading zeros. `None` if `s` is not a plain decimal.
pub fn canonical_decimal(s: &str) -> Option<String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) if !f.is_empty() => (i, f),
        Some(_) => return None,
        None => (body, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if neg && !(int == "0" && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// A price as an exact, ordered key: (integer part, fraction padded to 18 digits).
pub fn decimal_key(s: &str) -> Option<(u128, u128)> {
    let c = canonical_decimal(s)?;
    if c.starts_with('-') {
        return None;
    }
    let (i, f) = c.split_once('.').unwrap_or((&c, ""));
    if f.len() > 18 {
        return None;
    }
    let frac = format!("{f:0<18}");
    Some((i.parse().ok()?, frac.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_decimal_strips_what_it_should() {
        assert_eq!(canonical_decimal("65114.20").as_deref(), Some("65114.2"));
        assert_eq!(canonical_decimal("1.000").as_deref(), Some("1"));
        assert_eq!(canonical_decimal("0.0").as_deref(), Some("0"));
        assert_eq!(canonical_decimal("007.50").as_deref(), Some("7.5"));
        assert_eq!(canonical_decimal("1e5"), None);
        assert_eq!(canonical_decimal("1."), None);
    }
}
