//! The `spoolmq` binary: the command line is in the library
//! (`spoolmq::cli::app`). Only what must run before Rust's runtime is here.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether stdin (0) and stdout (1) were closed when the program started.
/// Rust's runtime opens /dev/null on a closed standard descriptor before
/// `main`, so they are looked at earlier, by a function the dynamic loader
/// runs before it (an ELF `.init_array` entry).
static CLOSED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_CLOSED_STD_FDS: extern "C" fn() = {
    extern "C" fn note() {
        for fd in 0..2 {
            // SAFETY: F_GETFD only reads the flags of a descriptor number.
            let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
            CLOSED[fd as usize].store(closed, Ordering::Relaxed);
        }
    }
    note
};

fn main() -> std::process::ExitCode {
    spoolmq::cli::app::main(CLOSED.each_ref().map(|c| c.load(Ordering::Relaxed)))
}
