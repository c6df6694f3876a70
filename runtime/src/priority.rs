//! Thread priorities: the event loop first.
//!
//! On a machine with few cores the threads that may run long (the embedded venue, the compute
//! pool, the store, consumers) can hold both cores while the loop's thread is ready to run, and
//! the OS makes it wait a scheduling slice: BENCHMARKS.md measured the loop waiting 1 to 2 ms in
//! the run queue with a message ready. Those threads lower their own priority when they start,
//! which needs no privilege; the loop keeps the default.

/// How far below the default the background threads run (`nice` 10).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]; a failure is logged and the
/// thread runs at the default.
pub fn background_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes no pointers; on Linux, PRIO_PROCESS with `who` 0 applies to
        // the calling thread only.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower this thread's priority"
            );
        }
    }
}
