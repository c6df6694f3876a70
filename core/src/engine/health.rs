//! Health of every component, and of the whole, as the ops endpoint and the heartbeat show it.

use std::collections::BTreeMap;

use crate::time::Time;

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
    components: BTreeMap<String, Component>,
}

impl Health {
    pub fn register(&mut self, name: &str, critical: bool, now: Time) {
        self.components
            .entry(name.to_string())
            .or_insert(Component {
                status: Status::NotStarted,
                since: now,
                last_error: None,
                critical,
                detail: String::new(),
            });
    }

    /// Sets a component's status; `since` moves only when the status changes.
    pub fn set(&mut self, name: &str, status: Status, now: Time) -> bool {
        let c = self
            .components
            .entry(name.to_string())
            .or_insert(Component {
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

    pub fn set_detail(&mut self, name: &str, detail: String) {
        if let Some(c) = self.components.get_mut(name) {
            c.detail = detail;
        }
    }

    pub fn error(&mut self, name: &str, error: String, now: Time) {
        if let Some(c) = self.components.get_mut(name) {
            c.last_error = Some((error, now));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Component> {
        self.components.get(name)
    }

    pub fn components(&self) -> impl Iterator<Item = (&str, &Component)> {
        self.components.iter().map(|(k, v)| (k.as_str(), v))
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

    #[test]
    fn overall_is_the_worst_of_its_components() {
        let mut h = Health::default();
        let t0 = Time::ZERO;
        h.register("link", true, t0);
        h.register("rest", false, t0);
        h.set("link", Status::Running, t0);
        h.set("rest", Status::Running, t0);
        assert_eq!(h.overall(t0, Duration::from_secs(60)), Overall::Ok);
        h.set("rest", Status::Degraded, t0);
        assert_eq!(
            h.overall(Time::from_secs(600), Duration::from_secs(60)),
            Overall::Degraded
        );
        h.set("link", Status::Degraded, Time::from_secs(10));
        assert_eq!(
            h.overall(Time::from_secs(69), Duration::from_secs(60)),
            Overall::Degraded
        );
        assert_eq!(
            h.overall(Time::from_secs(70), Duration::from_secs(60)),
            Overall::Down
        );
        h.set("link", Status::Running, Time::from_secs(70));
        h.set("job", Status::Crashed, Time::from_secs(70));
        assert_eq!(
            h.overall(Time::from_secs(70), Duration::from_secs(60)),
            Overall::Down
        );
    }

    #[test]
    fn since_moves_only_on_a_change() {
        let mut h = Health::default();
        h.register("x", false, Time::ZERO);
        assert!(h.set("x", Status::Running, Time::from_secs(1)));
        assert!(!h.set("x", Status::Running, Time::from_secs(2)));
        assert_eq!(h.get("x").unwrap().since, Time::from_secs(1));
    }
}
