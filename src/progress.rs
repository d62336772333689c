//! A one-line progress count for long PSA reads, on a terminal only.
//!
//! Reading 2,000 agreements' additions takes tens of seconds; a person at a terminal should see
//! that work is happening. The count lives in process-wide atomics rather than being threaded
//! through every client, because it is display only: it is off unless the command line turns it
//! on (stderr is a TTY and `--quiet` is not given), so library users and tests never see it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
static REQUESTS: AtomicUsize = AtomicUsize::new(0);
static LAST_DRAWN_MS: AtomicU64 = AtomicU64::new(0);

/// Turns the progress line on or off for this process.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether stderr is a terminal, i.e. whether a progress line would be seen by a person.
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Called by the PSA clients after each response; redraws at most ten times a second.
pub fn request_done() {
    let n = REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    // Milliseconds since the first redraw check: a duration, so monotonic time, not the clock.
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 100;
    let last = LAST_DRAWN_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 100
        && LAST_DRAWN_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K  reading the PSA: {n} requests");
        let _ = err.flush();
    }
}

/// Clears the progress line before other output follows.
pub fn finish() {
    if ENABLED.load(Ordering::Relaxed) && LAST_DRAWN_MS.swap(0, Ordering::Relaxed) != 0 {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}
