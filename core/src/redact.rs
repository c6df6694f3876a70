//! Secrets out of what is shown (a pure function): a URL's credentials (`user:pass@`) and the
//! values of query parameters that name a secret become `***`, wherever a URL reaches a log, an
//! error, /health or a Debug print. The URL itself, for connecting, is never altered.

use std::borrow::Cow;

/// Query parameter names whose values are secrets, lowercased.
const SECRET_PARAMS: [&str; 8] = [
    "api_key",
    "apikey",
    "key",
    "secret",
    "token",
    "password",
    "sign",
    "signature",
];

/// `url` with its userinfo and secret query values replaced by `***`.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut changed = false;
    // The authority runs from after "://" to the first '/', '?' or '#'.
    let (scheme_end, rest) = match url.find("://") {
        Some(i) => (i + 3, &url[i + 3..]),
        None => (0, url),
    };
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    out.push_str(&url[..scheme_end]);
    match authority.rfind('@') {
        Some(at) => {
            out.push_str("***");
            out.push_str(&authority[at..]);
            changed = true;
        }
        None => out.push_str(authority),
    }
    let tail = &rest[auth_len..];
    match tail.split_once('?') {
        None => out.push_str(tail),
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                        out.push_str(k);
                        out.push_str("=***");
                        changed = true;
                    }
                    _ => out.push_str(pair),
                }
            }
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(url)
    }
}

/// Every URL inside `text` redacted: for messages that quote one (errors from HTTP clients).
pub fn redact_urls_in(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let r = redact_url(word);
        changed |= matches!(r, Cow::Owned(_));
        out.push_str(&r);
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_secret_parameters_are_hidden_and_the_rest_kept() {
        assert_eq!(
            redact_url("wss://bob:hunter2@stream.bybit.com/v5/public/linear"),
            "wss://***@stream.bybit.com/v5/public/linear"
        );
        assert_eq!(
            redact_url("https://hooks.example/x?token=abc&chat=1#f"),
            "https://hooks.example/x?token=***&chat=1#f"
        );
        assert_eq!(redact_url("http://127.0.0.1:9797"), "http://127.0.0.1:9797");
        assert!(matches!(
            redact_url("http://127.0.0.1:9797/a?b=c"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            redact_urls_in("connect to ws://u:p@h:1/x: refused"),
            "connect to ws://***@h:1/x: refused"
        );
    }
}
