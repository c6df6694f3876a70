use super::*;

#[test]
fn an_ops_server_beyond_loopback_needs_a_token() {
    let e = resolve_toml("ops_addr = \"0.0.0.0:9898\"\n").unwrap_err();
    assert!(e.0.contains("KEEL_OPS_TOKEN"), "{e}");
    let mut file: FileConfig = toml::from_str("ops_addr = \"0.0.0.0:9898\"\n").unwrap();
    apply_env(&mut file, &|k| {
        (k == "KEEL_OPS_TOKEN").then(|| "tok-123".to_string())
    })
    .unwrap();
    let cfg = resolve(file, Overrides::default()).unwrap();
    assert_eq!(cfg.ops_token, Some(crate::ops::OpsToken("tok-123".into())));
    assert!(!format!("{cfg:?}").contains("tok-123"));
    assert!(resolve_toml("ops_addr = \"127.0.0.1:9898\"\n").is_ok());
}

#[test]
fn the_backoff_reset_period_is_configurable_and_bounded() {
    let cfg = resolve_toml("[link]\nreconnect_reset_after_ms = 20000\n").unwrap();
    assert_eq!(cfg.engine.link.backoff.reset_after_ms, 20_000);
    let e = resolve_toml("[link]\nreconnect_reset_after_ms = 5\n").unwrap_err();
    assert!(e.0.contains("link.reconnect_reset_after_ms"), "{e}");
}

#[test]
fn generated_credentials_are_fresh_and_never_printed() {
    let (a, b) = (
        Credentials::generate().unwrap(),
        Credentials::generate().unwrap(),
    );
    assert_ne!(a, b);
    assert!(a.api_key.starts_with("keel") && a.api_secret.len() == 64);
    let shown = format!("{a:?} {:?}", Some(a.clone()));
    assert!(
        !shown.contains(&a.api_secret) && !shown.contains(&a.api_key),
        "{shown}"
    );
}

fn resolve_toml(text: &str) -> Result<RunConfig, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
    resolve(file, Overrides::default())
}

#[test]
fn defaults_need_no_config_at_all() {
    let c = resolve(FileConfig::default(), Overrides::default()).unwrap();
    assert_eq!(c.venue, VenueChoice::Embedded);
    assert_eq!(c.engine.symbols, DEFAULT_SYMBOLS);
    assert_eq!(c.ops_addr.to_string(), DEFAULT_OPS_ADDR);
}

#[test]
fn a_spot_run_may_watch_but_not_trade() {
    assert!(resolve_toml("category = \"spot\"\n").is_ok());
    let e = resolve_toml("category = \"spot\"\nauto_execute = true\n").unwrap_err();
    assert!(e.0.contains("linear perpetuals only"), "{e}");
    let file: FileConfig = toml::from_str("category = \"spot\"\n").unwrap();
    let live = Overrides {
        live: true,
        ..Overrides::default()
    };
    let e = resolve(file, live).unwrap_err();
    assert!(e.0.contains("linear perpetuals only"), "{e}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let e = resolve_toml("symbolz = [\"BTCUSDT\"]").unwrap_err();
    assert!(e.0.contains("symbolz"), "{e}");
    let e = resolve_toml("[link]\nping_every = 5").unwrap_err();
    assert!(e.0.contains("ping_every"), "{e}");
}

#[test]
fn bad_values_are_refused_with_their_key() {
    for (text, key) in [
        ("venue_url = \"ftp://x\"", "venue_url"),
        ("venue_url = \"not a url\"", "venue_url"),
        ("symbols = [\"btc usdt\"]", "symbols"),
        ("symbols = []", "symbols"),
        ("ops_addr = \"nowhere\"", "ops_addr"),
        ("book_depth = 7", "book_depth"),
        ("kline_interval = \"2\"", "kline_interval"),
        ("[link]\nping_interval_ms = 0", "link.ping_interval_ms"),
        (
            "[rest]\nrequests_per_window = 601",
            "rest.requests_per_window",
        ),
        ("venue = \"binance\"", "venue"),
        ("log_format = \"xml\"", "log_format"),
    ] {
        let e = resolve_toml(text).unwrap_err();
        assert!(e.0.contains(key), "{text}: {e}");
    }
}

#[test]
fn a_builtin_strategy_is_switched_off_with_false_and_on_with_true() {
    let c = resolve_toml("[strategy]\nrsi_reversion = false\n").unwrap();
    assert!(c.engine.strategy.rsi_reversion.is_none());
    assert!(c.engine.strategy.ema_cross.is_some());
    let c = resolve_toml("[strategy]\nema_cross = true\nrsi_reversion = false\n").unwrap();
    assert_eq!(c.engine.strategy.ema_cross, Some(Default::default()));
    let c =
        resolve_toml("[strategy]\nema_cross = { fast = 3, slow = 8, full_gap = 0.01 }\n").unwrap();
    assert_eq!(c.engine.strategy.ema_cross.unwrap().fast, 3);
    // A misspelt parameter is still named, and a wrong kind says what is expected.
    let e = resolve_toml("[strategy]\nema_cross = { fsat = 3 }\n").unwrap_err();
    assert!(e.0.contains("fsat"), "{e}");
    let e = resolve_toml("[strategy]\nema_cross = \"off\"\n").unwrap_err();
    assert!(e.0.contains("true (the defaults) or false (off)"), "{e}");
}

#[test]
fn flags_beat_env_beats_file() {
    let mut file: FileConfig = toml::from_str("symbols = [\"AAA\"]\nseed = 1").unwrap();
    apply_env(&mut file, &|k| (k == "KEEL_SEED").then(|| "2".to_string())).unwrap();
    let c = resolve(
        file,
        Overrides {
            symbols: Some("BBB,CCC".into()),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(c.engine.seed, 2);
    assert_eq!(c.engine.symbols, vec!["BBB", "CCC"]);
    let mut file = FileConfig::default();
    let e = apply_env(&mut file, &|k| {
        (k == "HEALTH_CHECK_INTERVAL").then(|| "soon".to_string())
    })
    .unwrap_err();
    assert!(e.0.contains("HEALTH_CHECK_INTERVAL"));
}

#[test]
fn the_readme_example_is_a_valid_configuration() {
    let readme = include_str!("../../../README.md");
    let block = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("README has a toml block");
    let c = resolve_toml(block).unwrap_or_else(|e| panic!("README example: {e}"));
    assert_eq!(c.engine.symbols, vec!["BTCUSDT", "ETHUSDT"]);
    assert_eq!(c.engine.rest.penalty_ms, 600_000);
    assert_eq!(c.engine.broker.daily_loss_max, 1000.0);
}

#[test]
fn one_base_url_serves_both_protocols() {
    let v = VenueChoice::Url("http://127.0.0.1:8080".into());
    assert_eq!(
        ws_url(&v, Category::Linear).unwrap(),
        "ws://127.0.0.1:8080/v5/public/linear"
    );
    let v = VenueChoice::Url("https://api.example".into());
    assert_eq!(
        ws_url(&v, Category::Spot).unwrap(),
        "wss://api.example/v5/public/spot"
    );
}
