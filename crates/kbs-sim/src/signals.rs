//! SIGTERM/SIGINT as a flag: the long-running components (kube-vip) clean up when the kubelet or
//! systemd stops them, instead of dying with their side effects (the VIP) left behind.

use std::sync::atomic::{AtomicBool, Ordering};

static TERMINATING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATING.store(true, Ordering::SeqCst);
}

/// Routes SIGTERM and SIGINT to [`terminating`].
pub fn on_terminate() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// Whether a termination signal arrived.
pub fn terminating() -> bool {
    TERMINATING.load(Ordering::SeqCst)
}
