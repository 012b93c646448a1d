//! Where lines for the user about damage found and skipped go.
//!
//! A store that skips a damaged record, cuts a torn WAL tail or rebuilds a
//! lost index tells the user in one line on stderr and goes on. Those lines
//! are handed to a [`Notices`] sink as soon as the operation that met the
//! damage returns: the spool carries the sink and gives it to every queue it
//! opens, so no caller can forget to print them. The command line prints
//! them to stderr ([`Notices::stderr`], the default); a library user or a
//! test may collect them instead ([`Notices::to`]).

use std::io::Write;
use std::sync::Arc;

/// The notices a [`Notices::collected`] sink kept.
pub type Kept = Arc<std::sync::Mutex<Vec<String>>>;

/// A sink for notices; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Notices(Arc<dyn Fn(&str) + Send + Sync>);

impl Notices {
    /// Prints each notice as one line on stderr (see [`to_stderr`]).
    pub fn stderr() -> Notices {
        Notices(Arc::new(to_stderr))
    }

    /// Hands each notice to `f`.
    pub fn to(f: impl Fn(&str) + Send + Sync + 'static) -> Notices {
        Notices(Arc::new(f))
    }

    /// A sink that keeps its notices, and the list it keeps them in.
    pub fn collected() -> (Notices, Kept) {
        let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = Arc::clone(&kept);
        let sink = Notices::to(move |line| {
            if let Ok(mut v) = into.lock() {
                v.push(line.to_string());
            }
        });
        (sink, kept)
    }

    pub fn send(&self, line: &str) {
        (self.0)(line)
    }
}

impl Default for Notices {
    fn default() -> Notices {
        Notices::stderr()
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notices")
    }
}

/// One line on stderr, `spoolmq: LINE`. A stderr that cannot be written (a
/// full disk under `2>>log`) must not turn an error into a panic: the exit
/// code still says it.
pub fn to_stderr(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "spoolmq: {line}");
}
