//! keel-sim: the turmoil harness. The venue on a turmoil listener, the runtime's transports over
//! turmoil streams, seeds from `KEEL_SEED`/`KEEL_SEEDS`, and a freeze detector. Dev only: the
//! production binary never depends on this crate (tests/sans_io.rs checks).

pub mod harness;
pub mod transport;

pub use harness::turmoil;
