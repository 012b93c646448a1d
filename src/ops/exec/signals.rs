//! SIGTERM and SIGINT for `exec`, by a self-pipe: the handler only counts
//! the signal and writes its number to a pipe (both async-signal-safe), and
//! a thread reads the pipe and hands each signal on, in order, with its
//! place in the sequence (1 for the first). Made with `libc`, which spoolmq
//! already uses, rather than a crate: it is forty lines and spoolmq needs
//! nothing else of signal handling.

use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe (-1 until [`install`]).
static PIPE: AtomicI32 = AtomicI32::new(-1);
/// The first signal received (0: none yet).
static FIRST: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: errno is this thread's; it is put back as it was, so the
    // interrupted code never sees the handler's write change it.
    unsafe {
        let errno = *libc::__errno_location();
        let _ = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        let fd = PIPE.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = sig as u8;
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
        *libc::__errno_location() = errno;
    }
}

/// The first SIGTERM or SIGINT received since [`install`], if any.
pub fn first() -> Option<i32> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Catches SIGTERM and SIGINT from now on (once per process): each one is
/// handed to `deliver` as `(signal, nth)` on a thread of its own.
pub fn install(mut deliver: impl FnMut(i32, u32) + Send + 'static) -> std::io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // SAFETY: F_SETFL on a descriptor just made. A full pipe then drops a
    // signal's byte instead of blocking the handler.
    unsafe {
        let flags = libc::fcntl(write_end, libc::F_GETFL);
        libc::fcntl(write_end, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    PIPE.store(write_end, Ordering::SeqCst);
    std::thread::spawn(move || {
        let mut nth = 0u32;
        loop {
            let mut byte = 0u8;
            // SAFETY: reads one byte into `byte` from the pipe's read end.
            let n = unsafe { libc::read(read_end, (&mut byte as *mut u8).cast(), 1) };
            if n == 1 {
                nth = nth.saturating_add(1);
                deliver(i32::from(byte), nth);
            } else if n == 0
                || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                return;
            }
        }
    });
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction with a handler that is async-signal-safe;
        // SA_RESTART so that no other call sees EINTR because of it.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
