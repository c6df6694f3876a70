//! Health of every component, and of the whole, as the ops endpoint and the heartbeat show it
//! (a data structure: setters and getters, no time of its own). Components are a typed enum;
//! their names exist only where they are shown.

use std::collections::BTreeMap;
use std::fmt;

use super::link::LinkId;
use crate::time::Time;

/// Every component the engine reports on. Ordered as their names sort, so /health lists them
/// alphabetically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentId {
    /// Consumers of events (the store, the ops API): degraded while they drop events.
    Consumers,
    /// The supervised signal job.
    SignalJob,
    /// One public WebSocket link.
    Link(LinkId),
    /// Market state: every book synced and fresh.
    Market,
    /// The REST scheduler: paused by a 403 or not.
    Rest,
    /// Live order execution: down once halted (store failure, refused keys).
    Execution,
    /// One strategy's slot, by its index; shown by its name.
    Strategy(u16),
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentId::Consumers => f.write_str("consumers"),
            ComponentId::SignalJob => f.write_str("job.signals"),
            ComponentId::Link(l) => write!(f, "link.{}", l.0),
            ComponentId::Market => f.write_str("market"),
            ComponentId::Rest => f.write_str("rest"),
            ComponentId::Execution => f.write_str("execution"),
            ComponentId::Strategy(i) => write!(f, "strategy.{i}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    NotStarted,
    Starting,
    Running,
    Degraded,
    Stopped,
    Crashed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "not_started",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Degraded => "degraded",
            Status::Stopped => "stopped",
            Status::Crashed => "crashed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Overall {
    Ok,
    Degraded,
    Down,
}

impl Overall {
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Ok => "ok",
            Overall::Degraded => "degraded",
            Overall::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub status: Status,
    pub since: Time,
    pub last_error: Option<(String, Time)>,
    /// Whether the bot is down while this component is not running.
    pub critical: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    components: BTreeMap<ComponentId, Component>,
    /// Names shown instead of a component's own (a strategy's).
    names: BTreeMap<ComponentId, String>,
}

impl Health {
    /// A component that is never critical and shows as `name`.
    pub fn register_named(&mut self, id: ComponentId, name: &str, now: Time) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.names.entry(id) {
            e.insert(name.to_string());
            self.register(id, false, now);
        }
    }

    /// The name a component is shown by.
    pub fn name(&self, id: ComponentId) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    pub fn register(&mut self, id: ComponentId, critical: bool, now: Time) {
        self.components.entry(id).or_insert(Component {
            status: Status::NotStarted,
            since: now,
            last_error: None,
            critical,
            detail: String::new(),
        });
    }

    /// Sets a component's status; `since` moves only when the status changes.
    pub fn set(&mut self, id: ComponentId, status: Status, now: Time) -> bool {
        let c = self.components.entry(id).or_insert(Component {
            status,
            since: now,
            last_error: None,
            critical: false,
            detail: String::new(),
        });
        if c.status != status {
            c.status = status;
            c.since = now;
            return true;
        }
        false
    }

    pub fn set_detail(&mut self, id: ComponentId, detail: String) {
        if let Some(c) = self.components.get_mut(&id) {
            c.detail = detail;
        }
    }

    pub fn error(&mut self, id: ComponentId, error: String, now: Time) {
        if let Some(c) = self.components.get_mut(&id) {
            c.last_error = Some((error, now));
        }
    }

    pub fn get(&self, id: ComponentId) -> Option<&Component> {
        self.components.get(&id)
    }

    pub fn components(&self) -> impl Iterator<Item = (ComponentId, &Component)> {
        self.components.iter().map(|(k, v)| (*k, v))
    }

    /// Down when a critical component has been out of service for `down_after`, or a
    /// component crashed; degraded when anything is not running; ok otherwise.
    pub fn overall(&self, now: Time, down_after: std::time::Duration) -> Overall {
        let mut overall = Overall::Ok;
        for c in self.components.values() {
            match c.status {
                Status::Running => {}
                Status::Crashed => return Overall::Down,
                Status::NotStarted | Status::Starting | Status::Degraded | Status::Stopped => {
                    if c.critical && now.since(c.since) >= down_after {
                        return Overall::Down;
                    }
                    overall = Overall::Degraded;
                }
            }
        }
        overall
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LINK: ComponentId = ComponentId::Link(LinkId(0));

    #[test]
    fn overall_is_the_worst_of_its_components() {
        let mut h = Health::default();
        let t0 = Time::ZERO;
        h.register(LINK, true, t0);
        h.register(ComponentId::Rest, false, t0);
        h.set(LINK, Status::Running, t0);
        h.set(ComponentId::Rest, Status::Running, t0);
        assert_eq!(h.overall(t0, Duration::from_secs(60)), Overall::Ok);
        h.set(ComponentId::Rest, Status::Degraded, t0);
        assert_eq!(
            h.overall(Time::from_secs(600), Duration::from_secs(60)),
            Overall::Degraded
        );
        h.set(LINK, Status::Degraded, Time::from_secs(10));
        assert_eq!(
            h.overall(Time::from_secs(69), Duration::from_secs(60)),
            Overall::Degraded
        );
        assert_eq!(
            h.overall(Time::from_secs(70), Duration::from_secs(60)),
            Overall::Down
        );
        h.set(LINK, Status::Running, Time::from_secs(70));
        h.set(ComponentId::SignalJob, Status::Crashed, Time::from_secs(70));
        assert_eq!(
            h.overall(Time::from_secs(70), Duration::from_secs(60)),
            Overall::Down
        );
    }

    #[test]
    fn since_moves_only_on_a_change() {
        let mut h = Health::default();
        h.register(ComponentId::Market, false, Time::ZERO);
        assert!(h.set(ComponentId::Market, Status::Running, Time::from_secs(1)));
        assert!(!h.set(ComponentId::Market, Status::Running, Time::from_secs(2)));
        assert_eq!(
            h.get(ComponentId::Market).unwrap().since,
            Time::from_secs(1)
        );
    }
}
