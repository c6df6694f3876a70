//! Why a strategy said what it said, written out only when someone reads it.
//!
//! A live run logs and stores every reason, a backtest reads none of the millions it makes: a
//! reason built from a template and a few numbers ([`Reason::lazy`]) is two words and an array
//! until it is shown. Formatting the built-ins' floats every candle was a quarter of a backtest's
//! time (BENCHMARKS.md, session 8).

use std::borrow::Cow;
use std::fmt;

/// Numbers a lazy reason may carry.
pub const REASON_VALUES_MAX: usize = 6;

/// Writes a lazy reason from its numbers.
pub type ReasonFn = fn(&[f64], &mut fmt::Formatter<'_>) -> fmt::Result;

#[derive(Clone)]
pub struct Reason(Repr);

#[derive(Clone)]
enum Repr {
    Text(Cow<'static, str>),
    Lazy {
        write: ReasonFn,
        values: [f64; REASON_VALUES_MAX],
        len: u8,
    },
}

impl Reason {
    /// A fixed text, kept without a copy.
    pub const fn fixed(text: &'static str) -> Reason {
        Reason(Repr::Text(Cow::Borrowed(text)))
    }

    /// A reason `write` makes from `values` when it is shown: a plain `fn` or a closure that
    /// captures nothing, e.g. `Reason::lazy(|v, f| write!(f, "RSI {:.1}", v[0]), [rsi])`.
    pub fn lazy<const N: usize>(write: ReasonFn, values: [f64; N]) -> Reason {
        const {
            assert!(
                N <= REASON_VALUES_MAX,
                "a lazy reason carries at most 6 numbers"
            )
        };
        let mut v = [0.0; REASON_VALUES_MAX];
        v[..N].copy_from_slice(&values);
        Reason(Repr::Lazy {
            write,
            values: v,
            len: N as u8,
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Text(t) => f.write_str(t),
            Repr::Lazy { write, values, len } => write(&values[..usize::from(*len)], f),
        }
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// Two reasons are equal when they read the same.
impl PartialEq for Reason {
    fn eq(&self, o: &Reason) -> bool {
        match (&self.0, &o.0) {
            (Repr::Text(a), Repr::Text(b)) => a == b,
            _ => self.to_string() == o.to_string(),
        }
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, o: &&str) -> bool {
        match &self.0 {
            Repr::Text(a) => a == o,
            Repr::Lazy { .. } => self.to_string().as_str() == *o,
        }
    }
}

impl From<String> for Reason {
    fn from(s: String) -> Reason {
        Reason(Repr::Text(Cow::Owned(s)))
    }
}

impl From<&str> for Reason {
    fn from(s: &str) -> Reason {
        Reason(Repr::Text(Cow::Owned(s.to_owned())))
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_reason_reads_as_its_template_with_its_numbers() {
        let r = Reason::lazy(
            |v, f| write!(f, "EMA{} {:.2} ({:+.1}%)", v[0], v[1], v[2]),
            [9.0, 1.5, -0.25],
        );
        assert_eq!(r.to_string(), "EMA9 1.50 (-0.2%)");
        assert_eq!(r, "EMA9 1.50 (-0.2%)");
        assert_eq!(r, Reason::from("EMA9 1.50 (-0.2%)"));
        assert_ne!(r, Reason::fixed("EMA9"));
        assert_eq!(format!("{r:?}"), "\"EMA9 1.50 (-0.2%)\"");
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"EMA9 1.50 (-0.2%)\"");
    }

    #[test]
    fn a_lazy_reason_sees_only_its_own_numbers() {
        let r = Reason::lazy(|v, f| write!(f, "{}", v.len()), [1.0, 2.0]);
        assert_eq!(r, "2");
        assert_eq!(Reason::lazy(|v, f| write!(f, "{}", v.len()), []), "0");
    }
}
