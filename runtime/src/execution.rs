//! How keel trades: on paper (fills simulated against the live book) or live (signed orders to
//! the venue), and with which key pair. Live on Bybit's mainnet needs an explicit confirmation;
//! keys come from `KEEL_API_KEY` / `KEEL_API_SECRET` or a key file only its owner can read, and
//! never reach a log, an error or a Debug print.

use serde::Deserialize;

use crate::config::{ConfigError, Credentials, VenueChoice};

/// `[live]` in the config file. The keys themselves are never read from the config file (it is
/// often shared or committed): only from the environment or the key file.
#[derive(Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LiveFile {
    /// "paper" or "live".
    pub mode: Option<String>,
    /// Live on Bybit's mainnet trades real money: refused unless this is true.
    pub mainnet_confirmed: Option<bool>,
    /// A TOML file with `api_key` and `api_secret`, readable by its owner only.
    pub key_file: Option<String>,
    /// At exit, cancel every open order at the venue first (default true).
    pub cancel_on_exit: Option<bool>,
    #[serde(skip)]
    pub api_key: Option<String>,
    #[serde(skip)]
    pub api_secret: Option<String>,
}

impl std::fmt::Debug for LiveFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFile")
            .field("mode", &self.mode)
            .field("mainnet_confirmed", &self.mainnet_confirmed)
            .field("key_file", &self.key_file)
            .field("cancel_on_exit", &self.cancel_on_exit)
            .field("keys", &"<redacted>")
            .finish()
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(m.into()))
}

/// Whether the run trades live. The embedded venue trades live by default (its account is
/// made for the run); a real venue trades on paper unless live is asked for.
pub fn resolve_mode(
    venue: &VenueChoice,
    paper_flag: bool,
    live_flag: bool,
    file: &LiveFile,
) -> Result<bool, ConfigError> {
    let from_file = match file.mode.as_deref() {
        None => None,
        Some("paper") => Some(false),
        Some("live") => Some(true),
        Some(m) => {
            return err(format!(
                "live.mode must be \"paper\" or \"live\", not {m:?}"
            ));
        }
    };
    if paper_flag && live_flag {
        return err("give --paper or --live, not both");
    }
    let live = if live_flag {
        true
    } else if paper_flag {
        false
    } else {
        from_file.unwrap_or(*venue == VenueChoice::Embedded)
    };
    if live && *venue == VenueChoice::Bybit && file.mainnet_confirmed != Some(true) {
        return err(
            "live trading on Bybit mainnet moves real money: set mainnet_confirmed = true under \
             [live] in the config file to confirm (or use --venue bybit-testnet)",
        );
    }
    Ok(live)
}

/// The key pair for a live run on a real venue; `None` for paper or the embedded venue (which
/// makes its own).
pub fn resolve_credentials(
    venue: &VenueChoice,
    live: bool,
    file: &LiveFile,
) -> Result<Option<Credentials>, ConfigError> {
    if !live || *venue == VenueChoice::Embedded {
        return Ok(None);
    }
    match (&file.api_key, &file.api_secret, &file.key_file) {
        (Some(k), Some(s), _) if !k.is_empty() && !s.is_empty() => Ok(Some(Credentials {
            api_key: k.clone(),
            api_secret: s.clone(),
        })),
        (Some(_), None, _) | (None, Some(_), _) => {
            err("KEEL_API_KEY and KEEL_API_SECRET must be set together")
        }
        (_, _, Some(path)) => read_key_file(std::path::Path::new(path)).map(Some),
        _ => err(
            "live trading needs an API key: set KEEL_API_KEY and KEEL_API_SECRET, or key_file \
             under [live]",
        ),
    }
}

fn read_key_file(path: &std::path::Path) -> Result<Credentials, ConfigError> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| ConfigError(format!("key file {shown}: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return err(format!(
                "key file {shown} can be read by others (mode {:o}): chmod 600 it",
                mode & 0o777
            ));
        }
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError(format!("key file {shown}: {e}")))?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Keys {
        api_key: String,
        api_secret: String,
    }
    // The parser's message could quote a line of the file: say only where it failed.
    let k: Keys = toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "key file {shown} is not `api_key = \"...\"` and `api_secret = \"...\"` ({})",
            e.span()
                .map_or("unreadable".into(), |s| format!("at byte {}", s.start))
        ))
    })?;
    if k.api_key.is_empty() || k.api_secret.is_empty() {
        return err(format!("key file {shown} has an empty key"));
    }
    Ok(Credentials {
        api_key: k.api_key,
        api_secret: k.api_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_venue_trades_live_and_a_real_one_on_paper_unless_asked() {
        let f = LiveFile::default();
        assert!(resolve_mode(&VenueChoice::Embedded, false, false, &f).unwrap());
        assert!(!resolve_mode(&VenueChoice::Embedded, true, false, &f).unwrap());
        let testnet = VenueChoice::Url("https://api-testnet.bybit.com".into());
        assert!(!resolve_mode(&testnet, false, false, &f).unwrap());
        assert!(resolve_mode(&testnet, false, true, &f).unwrap());
        assert!(resolve_mode(&testnet, true, true, &f).is_err());
    }

    #[test]
    fn mainnet_live_needs_a_confirmation() {
        let e = resolve_mode(&VenueChoice::Bybit, false, true, &LiveFile::default()).unwrap_err();
        assert!(e.0.contains("mainnet_confirmed"), "{e}");
        let ok = LiveFile {
            mainnet_confirmed: Some(true),
            ..Default::default()
        };
        assert!(resolve_mode(&VenueChoice::Bybit, false, true, &ok).unwrap());
    }

    #[test]
    fn keys_come_from_the_environment_or_an_owner_only_file_and_never_show() {
        let venue = VenueChoice::Bybit;
        let none = resolve_credentials(&venue, true, &LiveFile::default()).unwrap_err();
        assert!(none.0.contains("KEEL_API_KEY"));
        let env = LiveFile {
            api_key: Some("KEYKEYKEY".into()),
            api_secret: Some("SECRETSECRET".into()),
            ..Default::default()
        };
        let c = resolve_credentials(&venue, true, &env).unwrap().unwrap();
        assert_eq!(c.api_key, "KEYKEYKEY");
        let shown = format!("{env:?} {c:?}");
        assert!(
            !shown.contains("KEYKEY") && !shown.contains("SECRETSECRET"),
            "{shown}"
        );

        let dir = std::env::temp_dir().join(format!("keel-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(
            &path,
            "api_key = \"FILEKEY\"\napi_secret = \"FILESECRET\"\n",
        )
        .unwrap();
        let from_file = LiveFile {
            key_file: Some(path.display().to_string()),
            ..Default::default()
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let open = resolve_credentials(&venue, true, &from_file).unwrap_err();
            assert!(open.0.contains("chmod 600"), "{open}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let c = resolve_credentials(&venue, true, &from_file)
            .unwrap()
            .unwrap();
        assert_eq!(c.api_secret, "FILESECRET");
        std::fs::write(&path, "api_key = \"FILEKEY\"\nsecret = \"LEAKME\"\n").unwrap();
        let bad = resolve_credentials(&venue, true, &from_file).unwrap_err();
        assert!(!bad.0.contains("LEAKME"), "{bad}");
        assert_eq!(
            resolve_credentials(&venue, false, &from_file).unwrap(),
            None
        );
    }
}
