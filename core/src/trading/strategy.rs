mod builtin;

pub use builtin::*;
