//! The engine's public links: topics packed into connections under Bybit's per-connection limit.

use super::config::{ConfigError, EngineConfig};
use super::link::{Link, LinkId};

/// Bybit: "for one public connection, you cannot have length of "args" array over 21,000
/// characters".
pub const ARGS_CHARS_PER_LINK_MAX: usize = 21_000;
/// Most links one engine opens.
pub const LINKS_MAX: usize = 64;

pub fn link_name(id: LinkId) -> String {
    format!("link.{}", id.0)
}

/// Splits the topics into links whose `args` stay under Bybit's per-connection limit.
pub(super) fn pack_links(
    config: &EngineConfig,
    topics: Vec<String>,
) -> Result<Vec<Link>, ConfigError> {
    let mut groups: Vec<Vec<String>> = vec![Vec::new()];
    let mut chars = 0;
    for t in topics {
        let cost = t.len() + 3;
        if chars + cost > ARGS_CHARS_PER_LINK_MAX && !groups.last().is_some_and(Vec::is_empty) {
            groups.push(Vec::new());
            chars = 0;
        }
        chars += cost;
        groups.last_mut().expect("one group at least").push(t);
    }
    if groups.len() > LINKS_MAX {
        return Err(ConfigError(format!(
            "more than {LINKS_MAX} connections would be needed"
        )));
    }
    let mut link_cfg = config.link.clone();
    link_cfg.url = config.ws_url.clone();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| Link::new(LinkId(i as u32), link_cfg.clone(), g))
        .collect())
}
