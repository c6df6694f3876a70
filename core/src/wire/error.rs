//! Why an input frame was refused. Every refusal is typed, counted by reason, and leaves all
//! state as it was.

use std::fmt;

use crate::decimal::DecError;
use crate::wire::json::JsonError;
use crate::wire::topic::TopicError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Longer than the configured frame limit; not even looked at.
    Oversize {
        len: usize,
        max: usize,
    },
    /// Not UTF-8 (only possible for bytes read from files; WebSocket text is UTF-8 already).
    NotUtf8,
    /// Not well-formed JSON.
    Json(JsonError),
    /// Valid JSON, but neither a topic frame nor a control frame we know.
    Unrecognized,
    MissingField(&'static str),
    /// A price, size or id that is not a number of the required form.
    BadNumber {
        field: &'static str,
        why: NumberWhy,
    },
    /// A value of the wrong type or outside what the protocol allows.
    BadValue {
        field: &'static str,
    },
    /// The same key twice in one object: we will not guess which one the venue meant.
    DuplicateField(&'static str),
    UnknownTopic(TopicError),
    /// More elements than a frame of this kind may carry.
    TooMany {
        field: &'static str,
        max: usize,
    },
    /// Parses, but cannot be true: a price at or below zero, a high under the close, a candle
    /// that starts between two periods.
    Implausible {
        field: &'static str,
        why: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberWhy {
    Decimal(DecError),
    NotAnInteger,
}

/// The counting key of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    Oversize,
    NotUtf8,
    NotJson,
    Unrecognized,
    MissingField,
    BadNumber,
    BadValue,
    UnknownTopic,
    Implausible,
}

impl BadReason {
    pub const ALL: [BadReason; 9] = [
        BadReason::Oversize,
        BadReason::NotUtf8,
        BadReason::NotJson,
        BadReason::Unrecognized,
        BadReason::MissingField,
        BadReason::BadNumber,
        BadReason::BadValue,
        BadReason::UnknownTopic,
        BadReason::Implausible,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::Oversize => "oversize",
            BadReason::NotUtf8 => "not_utf8",
            BadReason::NotJson => "not_json",
            BadReason::Unrecognized => "unrecognized",
            BadReason::MissingField => "missing_field",
            BadReason::BadNumber => "bad_number",
            BadReason::BadValue => "bad_value",
            BadReason::UnknownTopic => "unknown_topic",
            BadReason::Implausible => "implausible",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl DecodeError {
    pub fn reason(&self) -> BadReason {
        match self {
            DecodeError::Oversize { .. } | DecodeError::TooMany { .. } => BadReason::Oversize,
            DecodeError::NotUtf8 => BadReason::NotUtf8,
            DecodeError::Json(_) => BadReason::NotJson,
            DecodeError::Unrecognized => BadReason::Unrecognized,
            DecodeError::MissingField(_) => BadReason::MissingField,
            DecodeError::BadNumber { .. } => BadReason::BadNumber,
            DecodeError::BadValue { .. } | DecodeError::DuplicateField(_) => BadReason::BadValue,
            DecodeError::UnknownTopic(_) => BadReason::UnknownTopic,
            DecodeError::Implausible { .. } => BadReason::Implausible,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Oversize { len, max } => {
                write!(f, "frame of {len} bytes is over the {max}-byte limit")
            }
            DecodeError::NotUtf8 => f.write_str("frame is not UTF-8"),
            DecodeError::Json(JsonError::Syntax { at }) => {
                write!(f, "not JSON: syntax error at byte {at}")
            }
            DecodeError::Json(JsonError::Eof) => f.write_str("not JSON: input ends inside a value"),
            DecodeError::Json(JsonError::TooDeep) => f.write_str("not JSON: nested too deep"),
            DecodeError::Json(JsonError::Type { at }) => {
                write!(f, "unexpected JSON type at byte {at}")
            }
            DecodeError::Unrecognized => {
                f.write_str("neither a topic frame nor a known control frame")
            }
            DecodeError::MissingField(name) => write!(f, "missing field `{name}`"),
            DecodeError::Implausible { field, why } => write!(f, "field `{field}`: {why}"),
            DecodeError::BadNumber { field, why } => match why {
                NumberWhy::Decimal(e) => write!(f, "field `{field}`: {e}"),
                NumberWhy::NotAnInteger => write!(f, "field `{field}`: not an unsigned integer"),
            },
            DecodeError::BadValue { field } => {
                write!(f, "field `{field}` has a value we do not accept")
            }
            DecodeError::DuplicateField(name) => write!(f, "field `{name}` appears twice"),
            DecodeError::UnknownTopic(e) => write!(f, "unknown topic: {e}"),
            DecodeError::TooMany { field, max } => {
                write!(f, "field `{field}` has more than {max} elements")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Counts of refused frames, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BadCounts([u64; BadReason::ALL.len()]);

impl BadCounts {
    pub fn add(&mut self, r: BadReason) {
        self.0[r.index()] += 1;
    }

    pub fn get(&self, r: BadReason) -> u64 {
        self.0[r.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero reasons with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (BadReason, u64)> + '_ {
        BadReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }
}
