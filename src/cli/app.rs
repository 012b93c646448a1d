//! The command line over the library: parse, run one command, print, and
//! map errors to the contract's exit codes. Errors are printed once, as one
//! line (`spoolmq: ...`) (see `crate::base::error`). Each command is a short
//! function (`cmd_push`, ...) that calls the library and prints.

use crate::base::error::{Error, IoContext, Result};
use crate::cli::output;
use crate::cli::{Cli, Command, Lazy};
use crate::model::backoff::{Backoff, Retry};
use crate::model::failure::{Failure as AttemptFailure, How};
use crate::model::ids::Ids;
use crate::model::input;
use crate::ops::exec::{self, ExecRequest, PopRequest};
use crate::ops::{fsck, ingest};
use crate::queue::{Placed, Queue, now_ms};
use crate::spool::StoreKind;
use crate::store::Step;
use crate::{Spool, spool};
use clap::Parser;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Runs the command line: parses it, runs the command, prints, and maps
/// the outcome to the contract's exit code. `closed`: whether stdin and
/// stdout were closed when the process started (see `src/main.rs`).
pub fn main(closed: [bool; 2]) -> ExitCode {
    for (fd, was) in closed.into_iter().enumerate() {
        CLOSED_AT_START[fd].store(was, std::sync::atomic::Ordering::Relaxed);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = run(cli, &mut out);
    let flushed = out.flush();
    crate::base::failpoint::report_peak();
    match result {
        Ok(()) => match flushed {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                warn(format!("writing output: {e}"));
                ExitCode::from(1)
            }
            _ => ExitCode::SUCCESS,
        },
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            warn(format!("writing output: {e}"));
            ExitCode::from(1)
        }
        Err(Failure::Spool(e)) => {
            warn(e.to_string());
            ExitCode::from(e.exit_code())
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

/// Prints a clap error as one line (help and version as they are).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = e.print();
        return ExitCode::from(
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            },
        );
    }
    // One line: the message (a value may contain newlines), then any tips.
    let text = e.render().to_string();
    let mut message = Vec::new();
    let mut tips = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            continue;
        }
        if l.starts_with("tip:") {
            tips.push(format!("({l})"));
        } else {
            message.push(l.trim_start_matches("error: "));
        }
    }
    let mut line = message.join(" ");
    for t in tips {
        line.push(' ');
        line.push_str(&t);
    }
    warn(format!("{line} (see 'spoolmq --help')"));
    ExitCode::from(2)
}

/// The bodies `export` holds to print after it lets go of the spool lock:
/// a whole small queue is read and released at once, as before, while a
/// big one is printed as it is read (holding one body past this, not all).
/// 64 MiB: `tests/it/bounded_memory.rs` exports one 64 MiB body within its
/// bound, and no backup of fewer bytes than this holds up a worker.
const EXPORT_BUFFER: usize = 64 << 20;

enum Failure {
    Spool(Error),
    Io(std::io::Error),
    /// Exit with this code, saying nothing more (`exec`: a signal's 128+N,
    /// or with `--exit-code` the command's own status).
    Exit(u8),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Spool(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Io(e)
    }
}

/// One line on stderr (see [`crate::base::notice::to_stderr`]).
fn warn(line: String) {
    crate::base::notice::to_stderr(&line);
}

/// Warns (one line) when a URL given on the command line holds a password:
/// every local user can read a process's arguments (`ps`, /proc/PID/cmdline).
fn warn_url_password(url: &str, flag: &str) {
    if crate::spool::stores::url_has_password(url) {
        warn(format!(
            "warning: the password in {flag} is visible to every local user in the process list; use PGPASSWORD, a password file (~/.pgpass, PGPASSFILE) or SPOOLMQ_URL instead"
        ));
    }
}

/// A spinner on stderr when stderr is a terminal; hidden otherwise, so
/// scripts and logs never see it.
fn progress(template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Whether stdin (0) and stdout (1) were closed when the process started,
/// as `src/main.rs` saw before Rust's runtime put /dev/null in their place.
static CLOSED_AT_START: [std::sync::atomic::AtomicBool; 2] = [
    std::sync::atomic::AtomicBool::new(false),
    std::sync::atomic::AtomicBool::new(false),
];

/// Refuses a closed stdin (fd 0) or stdout (fd 1), or one open only the
/// other way: Rust's runtime puts /dev/null in place of a closed one, and
/// its standard streams take EBADF as an empty input and as a successful
/// write, so `push q <&-` would push an empty message and `pop q >&-`
/// would lease messages nobody sees. (`</dev/null` is an empty input, not
/// a closed one.)
fn std_fd_usable(fd: i32) -> Result<()> {
    let (name, wanted, how, fix) = if fd == 0 {
        (
            "stdin",
            libc::O_RDONLY,
            "reading",
            "give the body as an argument or on stdin (</dev/null for an empty message); nothing pushed",
        )
    } else {
        (
            "stdout",
            libc::O_WRONLY,
            "writing",
            "nothing popped (its output would be lost while the messages stay leased)",
        )
    };
    let closed = CLOSED_AT_START[fd as usize].load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: F_GETFL only reads the flags of a descriptor number.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if closed || flags == -1 {
        return Err(Error::Runtime(format!("{name} is closed: {fix}")));
    }
    let mode = flags & libc::O_ACCMODE;
    if flags & libc::O_PATH != 0 || (mode != libc::O_RDWR && mode != wanted) {
        return Err(Error::Runtime(format!(
            "{name} is not open for {how}: {fix}"
        )));
    }
    Ok(())
}

/// After `pop` could not write its output: gives `lost` back (ready again,
/// the delivery not counted) and says so in the error.
fn give_back(
    spool: &Spool,
    queue: &str,
    lost: &[crate::queue::Delivery],
    e: std::io::Error,
) -> Error {
    let receipts: Vec<String> = lost.iter().map(|d| d.receipt.clone()).collect();
    let e = Error::io("write", Path::new("<stdout>"), e);
    let n = lost.len();
    let them = if n == 1 { "it was" } else { "they were" };
    let done = spool.open_existing_queue(queue).and_then(|mut q| {
        let r = q.give_back(&receipts, now_ms());
        r?.into_result()
    });
    match done {
        Ok(_) => Error::Runtime(format!(
            "{e}; {n} popped message{} not written, so {them} given back (ready again, the attempt not counted)",
            if n == 1 { "" } else { "s" }
        )),
        Err(g) => Error::Runtime(format!(
            "{e}; {n} popped message{} not written and could not be given back ({g}): delivered again when the lease ends",
            if n == 1 { "" } else { "s" }
        )),
    }
}

/// Reads stdin whole, as one body: at most one byte more than the body
/// limit, so that an endless input is refused without being held.
fn stdin_body() -> Result<Vec<u8>> {
    let limit = crate::store::MAX_BODY;
    let mut body = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut body)
        .ctx("read", Path::new("<stdin>"))?;
    if body.len() as u64 > limit {
        return Err(Error::usage(format!(
            "<stdin>: the message body is larger than the limit of {limit} bytes (stopped reading there); nothing pushed"
        )));
    }
    Ok(body)
}

fn run(cli: Cli, out: &mut BufWriter<impl Write>) -> std::result::Result<(), Failure> {
    // These need no spool.
    match &cli.command {
        Command::Completions(Lazy(a)) => {
            return Ok(out.write_all(&crate::cli::completions(a.shell))?);
        }
        Command::Man(Lazy(a)) => {
            let page = crate::cli::man_page(a.command.as_deref()).map_err(Error::Usage)?;
            return Ok(out.write_all(&page)?);
        }
        Command::Keygen(Lazy(a)) => {
            if let Some(path) = &a.output {
                crate::model::crypt::create_key_file(path)?;
                return Ok(());
            }
            let key = crate::model::crypt::generate()?;
            private_stdout()?;
            return Ok(out.write_all(key.as_bytes())?);
        }
        _ => {}
    }
    // doctor reports an unsafe spool rather than refusing it; init is how
    // one is made shared.
    let strict = !matches!(cli.command, Command::Doctor | Command::Init(_));
    let mut spool = open_spool(&cli, strict)?;
    if matches!(
        cli.command,
        Command::Push(_)
            | Command::Pop(_)
            | Command::Peek(_)
            | Command::Exec(_)
            | Command::Export(_)
            | Command::Import(_)
            | Command::Fsck(_)
            | Command::Retry(_)
    ) {
        let env_key = std::env::var_os("SPOOLMQ_KEY_FILE").filter(|v| !v.is_empty());
        if let Some(path) = cli.key_file.clone().or(env_key.map(PathBuf::from)) {
            // The spool's owner may share a key with its group (0640).
            let spool_owner = spool.owner_uid();
            spool.key = Some(crate::model::crypt::Key::load(&path, spool_owner)?);
        }
    }
    let json = cli.json;
    run_command(cli, &spool, json, out).map_err(|f| match f {
        // Say which queues there are: the fix is often a typo.
        Failure::Spool(Error::NoSuchQueue(q)) => Failure::Spool(Error::Runtime(format!(
            "no such queue: {q} ({})",
            match spool.queues() {
                Ok(names) if names.is_empty() => "the spool has no queues".to_string(),
                Ok(names) => format!("the queues are: {}", names.join(", ")),
                Err(_) => format!("spool {}", spool.root.display()),
            }
        ))),
        f => f,
    })
}

/// Makes stdout, when it is a file (`spoolmq keygen > FILE`), readable by
/// its owner only, before a key is written to it.
fn private_stdout() -> Result<()> {
    // SAFETY: fstat and fchmod on descriptor 1 with a zeroed stat buffer we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(1, &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFREG
            && libc::fchmod(1, 0o600) != 0
        {
            return Err(Error::Runtime(format!(
                "cannot make the key file private (chmod 600): {}; nothing written",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// The spool the command works on: a PostgreSQL database if a URL is given
/// (`--url`, then `SPOOLMQ_URL`: either wins over any directory), else the
/// directory with its recorded store (or `--store`/`SPOOLMQ_STORE` for a new one).
/// With `strict`, a spool directory others could change is refused before
/// anything in it is read (see `spool::check_access`).
fn open_spool(cli: &Cli, strict: bool) -> Result<Spool> {
    let env_url = std::env::var("SPOOLMQ_URL").ok().filter(|v| !v.is_empty());
    if let Some(url) = cli.url.clone().or(env_url) {
        if !crate::spool::stores::is_postgres_url(&url) {
            return Err(Error::usage(
                "--url: use postgres://USER@HOST/DB, postgresql://..., or key=value pairs",
            ));
        }
        if cli.store.is_some() {
            return Err(Error::usage(
                "--url selects the postgres store: drop --store",
            ));
        }
        // A bad string (an option given twice, say) is a usage error now,
        // before anything else happens.
        crate::spool::stores::PgTarget::from_env(&url)?;
        if cli.url.is_some() {
            warn_url_password(&url, "--url");
        }
        return Ok(Spool::postgres(url));
    }
    let root = spool::resolve(cli.dir.clone(), |k| std::env::var_os(k))?;
    if strict {
        let access = spool::check_access(&root)?;
        crate::base::io::set_shared(access == spool::Access::Shared);
    }
    let env_store = std::env::var("SPOOLMQ_STORE")
        .ok()
        .filter(|v| !v.is_empty());
    let requested = match cli.store.as_deref().or(env_store.as_deref()) {
        Some(name) => Some(StoreKind::parse(name).map_err(|e| match cli.store {
            Some(_) => e,
            None => Error::usage(format!("SPOOLMQ_STORE: {e}")),
        })?),
        None => None,
    };
    // Only a repair may choose between two stores' files (spool::decide).
    if matches!(&cli.command, Command::Fsck(Lazy(a)) if a.repair) {
        return Spool::open_to_repair(root, requested);
    }
    Spool::open(root, requested)
}

fn run_command(
    cli: Cli,
    spool: &Spool,
    json: bool,
    out: &mut BufWriter<impl Write>,
) -> std::result::Result<(), Failure> {
    let spool = spool.clone();
    match cli.command {
        Command::Push(Lazy(a)) => cmd_push(&spool, a, json, out)?,
        Command::Pop(Lazy(a)) => cmd_pop(&spool, a, json, out)?,
        Command::Ack(Lazy(a)) => cmd_ack(&spool, a)?,
        Command::Nack(Lazy(a)) => cmd_nack(&spool, a)?,
        Command::Extend(Lazy(a)) => cmd_extend(&spool, a)?,
        Command::Retry(Lazy(a)) => cmd_retry(&spool, a, json, out)?,
        Command::Stats(Lazy(a)) => cmd_stats(&spool, a, json, out)?,
        Command::Exec(Lazy(a)) => cmd_exec(&spool, a)?,
        Command::List => {
            use std::io::IsTerminal;
            if !json && std::io::stdout().is_terminal() {
                // For a person: the table of stats (damaged queues appear in stats' errors).
                let rows = collect_stats(&spool, None)?;
                write!(out, "{}", output::stats_table(&rows))?;
                return Ok(());
            }
            for name in spool.queues()? {
                // Damaged queues are listed; never-pushed leftovers are not.
                if let Ok(None) = spool.open_queue_read_only(&name) {
                    continue;
                }
                if json {
                    writeln!(out, "{}", output::queue_json(&name))?;
                } else {
                    writeln!(out, "{name}")?;
                }
            }
        }
        Command::Peek(Lazy(a)) => cmd_peek(&spool, a, json, out)?,
        Command::Inspect(Lazy(a)) => cmd_inspect(&spool, a, json, out)?,
        Command::Purge(Lazy(a)) => cmd_purge(&spool, a, json, out)?,
        Command::Fsck(Lazy(a)) => run_fsck(&spool, a.queue, a.repair, json, out)?,
        Command::Migrate(Lazy(a)) => cmd_migrate(&spool, a, json, out)?,
        Command::Doctor if spool.kind == StoreKind::Postgres => {
            return Err(Error::usage(
                "doctor checks a spool directory's file system; with --url there is none (check the database server instead)",
            )
            .into());
        }
        Command::Doctor => {
            let findings = crate::ops::doctor::check(&spool);
            for f in &findings {
                if json {
                    let line = serde_json::to_string(f)
                        .map_err(|e| Error::Runtime(format!("json: {e}")))?;
                    writeln!(out, "{line}")?;
                } else {
                    let status = match f.status {
                        crate::ops::doctor::Status::Ok => "ok",
                        crate::ops::doctor::Status::Problem => "PROBLEM",
                    };
                    writeln!(out, "{status:<8}{}: {}", f.check, f.detail)?;
                }
            }
            let problems = findings
                .iter()
                .filter(|f| f.status == crate::ops::doctor::Status::Problem)
                .count();
            if problems > 0 {
                out.flush()?;
                return Err(Error::Runtime(format!(
                    "{problems} problem{} with spool {}",
                    if problems == 1 { "" } else { "s" },
                    spool.root.display()
                ))
                .into());
            }
        }
        Command::Export(Lazy(a)) => cmd_export(&spool, a, out)?,
        Command::Import(Lazy(a)) => cmd_import(&spool, a, json, out)?,
        Command::Bench(Lazy(a)) => cmd_bench(&spool, a, json, out)?,
        Command::BenchWorker(Lazy(a)) => match a.role.as_str() {
            "produce" => crate::ops::bench::produce(&spool, &a.queue, a.count, a.size as usize)?,
            _ => crate::ops::bench::consume(&spool, &a.queue, a.count, out)?,
        },
        Command::Init(_) if spool.kind == StoreKind::Postgres => {
            return Err(Error::usage(
                "init makes a spool directory; with --url the database needs none",
            )
            .into());
        }
        Command::Init(Lazy(a)) => {
            let done = crate::spool::init(&spool, a.group.as_deref())?;
            writeln!(out, "{done}")?;
        }
        Command::Completions(_) | Command::Man(_) | Command::Keygen(_) => {} // printed above
    }
    Ok(())
}

/// `spoolmq push`.
fn cmd_push(
    spool: &Spool,
    a: crate::cli::PushArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    use crate::model::unique;
    use crate::queue::Keys;
    let keys = match (&a.key, a.key_from_line) {
        (Some(k), _) => {
            use std::os::unix::ffi::OsStrExt;
            Keys::One(unique::key(k.as_bytes(), "--key")?)
        }
        (None, true) => Keys::FromBody,
        (None, false) => Keys::None,
    };
    if a.key_from_line && !a.lines {
        return Err(Error::usage("--key-from-line needs --lines").into());
    }
    if a.unique_for.is_some() && keys == Keys::None {
        return Err(Error::usage("--unique-for needs --key or --key-from-line").into());
    }
    let how = crate::queue::Pushing {
        delay: a.delay.unwrap_or(Duration::ZERO),
        ttl_ms: a
            .ttl
            .map(crate::model::ttl::ttl_ms)
            .transpose()?
            .unwrap_or(0),
        keys,
        unique_for_ms: a
            .unique_for
            .map(unique::unique_for_ms)
            .transpose()?
            .unwrap_or(0),
        priority: a.priority.unwrap_or(0),
        group: a
            .group
            .as_ref()
            .map(|g| {
                use std::os::unix::ffi::OsStrExt;
                crate::model::group::group(g.as_bytes())
            })
            .transpose()?,
    };
    // Messages not stored because their key was held: how many, out of
    // how many, and the first one's id (its holder's), for stderr.
    let mut held: (u64, u64, Option<String>) = (0, 0, None);
    // Prints the ids of the messages placed and flushes them, so that a
    // slow producer's batches show their ids as each is stored. A
    // duplicate's id is its key's holder's, marked in JSON (else counted
    // for one line on stderr at the end).
    let mut print = |ids: &Ids, placed: &Placed| -> Result<()> {
        held.0 += placed.duplicates.len() as u64;
        held.1 += placed.seqs.len() as u64;
        if let (None, Some(&i)) = (&held.2, placed.duplicates.first()) {
            held.2 = Some(ids.format(placed.seqs[i]));
        }
        let written = placed
            .each()
            .try_for_each(|(seq, dup)| {
                let id = ids.format_into(seq);
                if json {
                    let id = String::from_utf8_lossy(&id);
                    let line = if dup {
                        output::duplicate_json(&id)
                    } else {
                        output::id_json(&id)
                    };
                    writeln!(out, "{line}")
                } else {
                    out.write_all(&id).and_then(|_| out.write_all(b"\n"))
                }
            })
            .and_then(|_| out.flush());
        match written {
            // Nobody reads the ids: the push still counts.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.ctx("write", Path::new("<stdout>")),
        }
    };
    if a.lines {
        std_fd_usable(0)?;
        let stdin = std::io::stdin();
        // A progress line on stderr, only for a person watching.
        let bar = progress("pushed {pos} messages {spinner}");
        let mut print_and_count = |ids: &Ids, placed: &Placed| -> Result<()> {
            bar.inc(placed.seqs.len() as u64);
            print(ids, placed)
        };
        let pushed = ingest::push_lines(spool, &a.queue, stdin, how, &mut print_and_count);
        bar.finish_and_clear();
        if let Err(e) = pushed {
            // The batches before the failure are stored: their duplicates
            // are said too.
            say_held(&a.queue, json, &held);
            return Err(e.into());
        }
    } else {
        // Read stdin before taking the lock: a slow producer must not block consumers.
        let bodies: Vec<Vec<u8>> = if a.bodies.is_empty() {
            std_fd_usable(0)?;
            vec![stdin_body()?]
        } else {
            use std::os::unix::ffi::OsStrExt;
            a.bodies.iter().map(|b| b.as_bytes().to_vec()).collect()
        };
        let mut q = spool
            .open_queue(&a.queue, true)?
            .ok_or_else(|| Error::NoSuchQueue(a.queue.clone()))?;
        let r = q.push_seqs(&mut bodies.iter().map(Vec::as_slice), how, now_ms());
        drop(q);
        let (ids, placed) = r?;
        print(&ids, &placed)?;
    }
    say_held(&a.queue, json, &held);
    Ok(())
}

/// The one stderr line of a push about the messages it did not store
/// (`held`: how many, out of how many, the first holder's id); none with
/// `--json`, whose lines say it.
fn say_held(queue: &str, json: bool, held: &(u64, u64, Option<String>)) {
    match held {
        _ if json => {}
        (1, 1, Some(id)) => warn(format!(
            "{queue}: its key is held by {id}: nothing stored (its id is printed)"
        )),
        (n, total, Some(id)) if *n > 0 => warn(format!(
            "{queue}: {n} of {total} messages not stored: their key is held (the holders' ids are printed in their place; the first is {id})"
        )),
        _ => {}
    }
}

/// `spoolmq pop`.
fn cmd_pop(
    spool: &Spool,
    a: crate::cli::PopArgs,
    json: bool,
    out: &mut BufWriter<impl Write>,
) -> std::result::Result<(), Failure> {
    // Before anything is leased: output to a closed stdout is lost.
    std_fd_usable(1)?;
    let req = PopRequest {
        count: a.count as usize,
        lease: a.lease.lease,
        max_attempts: a.attempts.max_attempts,
        wait: a.wait,
    };
    let got = exec::pop(spool, &a.queue, &req)?;
    if got.is_empty() {
        return Err(Error::Empty(format!("{}: nothing to pop", a.queue)).into());
    }
    // From the first message that could not be written whole, the
    // messages are given back.
    if let Err((i, e)) = print_deliveries(out, &got, json) {
        return Err(give_back(spool, &a.queue, &got[i..], e).into());
    }
    Ok(())
}

/// Prints `got` as `pop` does, or says which message was the first not
/// written whole. Small messages are formatted into chunks of about
/// POP_CHUNK bytes, each written with counted writes straight to stdout
/// (every printed message is one line, so the whole ones in a chunk are
/// counted by their newlines); a message with a larger body streams
/// through `out` alone, never held twice.
fn print_deliveries(
    out: &mut BufWriter<impl Write>,
    got: &[crate::queue::Delivery],
    json: bool,
) -> std::result::Result<(), (usize, std::io::Error)> {
    let print = |w: &mut dyn Write, d: &crate::queue::Delivery| {
        if json {
            output::write_delivery_json(w, d)
        } else {
            output::write_delivery_plain(w, d)
        }
    };
    let send = |w: &mut dyn Write, chunk: &[u8], first: usize| {
        write_counted(w, chunk).map_err(|(n, e)| {
            (
                first + chunk[..n].iter().filter(|&&b| b == b'\n').count(),
                e,
            )
        })
    };
    out.flush().map_err(|e| (0, e))?;
    let mut chunk = Vec::with_capacity(2 * POP_CHUNK);
    let mut first = 0; // the first message in `chunk`
    for (i, d) in got.iter().enumerate() {
        let alone = d.body.len() > POP_CHUNK;
        if alone || chunk.len() >= POP_CHUNK {
            send(out.get_mut(), &chunk, first)?;
            chunk.clear();
            first = i;
        }
        if alone {
            print(out, d)
                .and_then(|_| out.flush())
                .map_err(|e| (i, e))?;
            first = i + 1;
        } else {
            print(&mut chunk, d).map_err(|e| (i, e))?;
        }
    }
    send(out.get_mut(), &chunk, first)
}

/// The bytes of `pop` output gathered before one write: one system call
/// per message cost 60% of `pop --count 100000` (0.16 s of 0.27 s, most
/// of it in the kernel); 64 KiB is a pipe's whole buffer.
const POP_CHUNK: usize = 64 * 1024;

/// Writes `bytes` to `w` whole, or says how many of them were written
/// before the error.
fn write_counted(
    w: &mut (impl Write + ?Sized),
    bytes: &[u8],
) -> std::result::Result<(), (usize, std::io::Error)> {
    let mut done = 0;
    while done < bytes.len() {
        match w.write(&bytes[done..]) {
            Ok(0) => return Err((done, std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    w.flush().map_err(|e| (done, e))
}

/// `spoolmq ack`.
fn cmd_ack(spool: &Spool, a: crate::cli::ReceiptsArgs) -> std::result::Result<(), Failure> {
    let receipts = receipts_of(&a.receipts)?;
    if receipts.is_empty() {
        return Ok(());
    }
    let mut q = open_for_receipts(spool, &a.queue, &receipts)?;
    q.ack(&receipts, now_ms())?.into_result()?;
    Ok(())
}

/// `spoolmq nack`.
fn cmd_nack(spool: &Spool, a: crate::cli::NackArgs) -> std::result::Result<(), Failure> {
    let receipts = receipts_of(&a.target.receipts)?;
    if receipts.is_empty() {
        return Ok(());
    }
    let mut q = open_for_receipts(spool, &a.target.queue, &receipts)?;
    let retry = match a.backoff {
        Some(base) => Retry::Backoff(Backoff {
            base,
            max: a.backoff_max,
        }),
        None => Retry::After(a.delay.unwrap_or(Duration::ZERO)),
    };
    let now = now_ms();
    let failure = a.reason.map(|r| AttemptFailure {
        at_ms: now,
        attempt: 0,
        how: How::Reason(r),
        stderr: Vec::new(),
    });
    q.nack(
        &receipts,
        retry,
        failure.as_ref(),
        a.attempts.max_attempts,
        now,
    )?
    .into_result()?;
    Ok(())
}

/// `spoolmq extend`.
fn cmd_extend(spool: &Spool, a: crate::cli::ExtendArgs) -> std::result::Result<(), Failure> {
    let receipts = receipts_of(&a.target.receipts)?;
    if receipts.is_empty() {
        return Ok(());
    }
    let mut q = open_for_receipts(spool, &a.target.queue, &receipts)?;
    q.extend(&receipts, a.lease, now_ms())?.into_result()?;
    Ok(())
}

/// `spoolmq retry`.
fn cmd_retry(
    spool: &Spool,
    a: crate::cli::RetryArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let r = match a.to.as_deref().filter(|to| *to != a.queue) {
        Some(to) => spool
            .open_queue_to_move(&a.queue, to)?
            .retry_to(to, &a.ids, now_ms())?,
        None => spool
            .open_existing_queue(&a.queue)?
            .retry(&a.ids, now_ms())?,
    };
    if json {
        writeln!(out, "{}", output::count_json("moved", r.moved))?;
    } else {
        writeln!(out, "{}", r.moved)?;
    }
    if !r.missing.is_empty() {
        out.flush()?;
        return Err(Error::Runtime(format!(
            "{}: not dead letters of this queue: {}",
            a.queue,
            r.missing.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// `spoolmq stats`.
fn cmd_stats(
    spool: &Spool,
    a: crate::cli::StatsArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    if a.prometheus {
        let rows = collect_stats(spool, a.queue.as_deref())?;
        write!(out, "{}", output::stats_prometheus(&rows))?;
        return Ok(());
    }
    let Some(every) = a
        .watch
        .map(|d| d.max(std::time::Duration::from_millis(100)))
    else {
        let rows = collect_stats(spool, a.queue.as_deref())?;
        return print_stats(out, &rows, None, json);
    };
    // Refresh until interrupted, with rates since the previous sample.
    let mut before: Option<(std::time::Instant, Vec<crate::queue::Stats>)> = None;
    loop {
        let rows = collect_stats(spool, a.queue.as_deref())?;
        let now = std::time::Instant::now();
        let rates = before.as_ref().map(|(t, prev)| {
            let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
            rows.iter()
                .map(|r| {
                    let p = prev.iter().find(|p| p.queue == r.queue);
                    let d = |f: fn(&crate::queue::Stats) -> u64| {
                        p.map_or(0.0, |p| f(r).saturating_sub(f(p)) as f64 / secs)
                    };
                    (d(|s| s.pushed), d(|s| s.acked))
                })
                .collect::<Vec<_>>()
        });
        use std::io::IsTerminal;
        if !json && std::io::stdout().is_terminal() {
            write!(out, "\x1b[H\x1b[2J")?;
        }
        print_stats(out, &rows, rates.as_deref(), json)?;
        out.flush()?;
        before = Some((now, rows));
        std::thread::sleep(every);
    }
}

/// `spoolmq exec`.
fn cmd_exec(spool: &Spool, a: crate::cli::ExecArgs) -> std::result::Result<(), Failure> {
    let req = ExecRequest {
        lease: a.lease.lease,
        max_attempts: a.attempts.max_attempts,
        wait: a.wait,
        repeat: a.repeat,
        backoff: Backoff {
            base: a.backoff,
            max: a.backoff_max,
        },
        timeout: a.timeout,
        kill_after: a.kill_after,
        jobs: a.jobs as usize,
        max_messages: a.max_messages,
        max_time: a.max_time,
        cmd: a.cmd,
    };
    let ran = exec::exec(spool, &a.queue, &req, &mut warn)?;
    match ran.exit_code(&a.queue, a.exit_code)? {
        0 => Ok(()),
        code => Err(Failure::Exit(code)),
    }
}

/// `spoolmq peek`.
fn cmd_peek(
    spool: &Spool,
    a: crate::cli::PeekArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let Some(mut q) = spool.open_queue_read_only(&a.queue)? else {
        return Ok(());
    };
    if a.dead {
        for p in q.peek_dead(a.count as usize, now_ms())? {
            if json {
                output::write_dead_json(out, &p)?;
            } else {
                output::write_dead_plain(out, &p)?;
            }
        }
        return Ok(());
    }
    for p in q.peek(a.count as usize, now_ms())? {
        if json {
            output::write_peeked_json(out, &p)?;
        } else {
            output::write_peeked_plain(out, &p)?;
        }
    }
    Ok(())
}

/// `spoolmq inspect`.
fn cmd_inspect(
    spool: &Spool,
    a: crate::cli::InspectArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let mut q = spool
        .open_queue_read_only(&a.queue)?
        .ok_or_else(|| Error::NoSuchQueue(a.queue.clone()))?;
    let now = now_ms();
    let Some(m) = q.inspect(&a.id, now)? else {
        return Err(Error::Runtime(format!(
            "{}: no such message: {} (never pushed, or acked or purged since)",
            a.queue,
            a.id.escape_debug()
        ))
        .into());
    };
    if json {
        writeln!(out, "{}", output::inspected_json(&m))?;
    } else {
        write!(out, "{}", output::inspected_plain(&m, now))?;
    }
    Ok(())
}

/// `spoolmq purge`.
fn cmd_purge(
    spool: &Spool,
    a: crate::cli::PurgeArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let mut q = spool.open_existing_queue(&a.queue)?;
    let n = q.purge(a.dead, a.older_than, now_ms())?;
    if json {
        writeln!(out, "{}", output::count_json("purged", n))?;
    } else {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// `spoolmq migrate`.
fn cmd_migrate(
    spool: &Spool,
    a: crate::cli::MigrateArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let to = StoreKind::parse(&a.to)?;
    if let Some(into) = &a.into
        && to == StoreKind::Postgres
    {
        warn_url_password(&into.to_string_lossy(), "--into");
    }
    let report = crate::ops::migrate::run(spool, to, a.into.as_deref())?;
    report.notes.iter().cloned().for_each(warn);
    // Where it went, never with a password from a URL.
    let at = match a.into.as_deref() {
        Some(into) if to == StoreKind::Postgres => {
            PathBuf::from(crate::spool::stores::describe_url(&into.to_string_lossy()))
        }
        Some(into) => into.to_path_buf(),
        None => spool.root.clone(),
    };
    if json {
        let line = serde_json::json!({
            "queues": report.queues,
            "messages": report.messages,
            "store": to.name(),
            "dir": at.display().to_string(),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "migrated {} queue{} ({} message{}) to the {} store in {}",
            report.queues,
            if report.queues == 1 { "" } else { "s" },
            report.messages,
            if report.messages == 1 { "" } else { "s" },
            to.name(),
            at.display()
        )?;
    }
    Ok(())
}

/// `spoolmq export`.
fn cmd_export(
    spool: &Spool,
    a: crate::cli::QueueArg,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let mut q = spool
        .open_queue_read_only(&a.queue)?
        .ok_or_else(|| Error::NoSuchQueue(a.queue.clone()))?;
    // Up to EXPORT_BUFFER bytes of bodies are printed after the spool
    // lock is let go (a slow reader holds up no worker); past that,
    // each message is printed as it is read, so memory stays bounded.
    let (mut held, mut held_bytes) = (Vec::new(), 0usize);
    let mut failed = None;
    let r = q.export(now_ms(), &mut |m| {
        if held_bytes + m.body.len() <= EXPORT_BUFFER {
            held_bytes += m.body.len();
            held.push(m);
            return Step::Continue;
        }
        let written = held
            .drain(..)
            .chain(std::iter::once(m))
            .try_for_each(|m| output::write_exported_json(out, &m));
        held_bytes = 0;
        match written {
            Ok(()) => Step::Continue,
            Err(e) => {
                failed = Some(e);
                Step::Stop
            }
        }
    });
    drop(q);
    if let Some(e) = failed {
        return Err(e.into());
    }
    r?;
    for m in held {
        output::write_exported_json(out, &m)?;
    }
    Ok(())
}

/// `spoolmq import`.
fn cmd_import(
    spool: &Spool,
    a: crate::cli::QueueArg,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    // Read and check everything before touching the queue: all or nothing.
    let mut msgs = Vec::new();
    let now = now_ms();
    let stdin = std::io::stdin();
    for (i, line) in std::io::BufRead::lines(stdin.lock()).enumerate() {
        let line = line.ctx("read", Path::new("<stdin>"))?;
        if line.trim().is_empty() {
            continue;
        }
        let m = output::parse_exported(&line, now).map_err(|e| {
            Error::Runtime(format!("<stdin>: line {}: {e}; nothing imported", i + 1))
        })?;
        msgs.push(m);
    }
    let mut q = spool
        .open_queue(&a.queue, true)?
        .ok_or_else(|| Error::NoSuchQueue(a.queue.clone()))?;
    let done = q.import(msgs, now_ms())?;
    drop(q);
    let n = (done.ids.len() - done.duplicates.len()) as u64;
    if !done.duplicates.is_empty() {
        warn(format!(
            "{}: {} message{} not imported: the queue holds {} key already",
            a.queue,
            done.duplicates.len(),
            if done.duplicates.len() == 1 { "" } else { "s" },
            if done.duplicates.len() == 1 {
                "its"
            } else {
                "their"
            },
        ));
    }
    if json {
        writeln!(out, "{}", output::count_json("imported", n))?;
    } else {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

/// `spoolmq bench`.
fn cmd_bench(
    spool: &Spool,
    a: crate::cli::BenchArgs,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let req = crate::ops::bench::BenchRequest {
        count: a.count,
        size: a.size as usize,
        batch: a.batch,
        producers: a.producers,
        consumers: a.consumers,
    };
    let report = crate::ops::bench::run(spool, &req)?;
    if json {
        let line =
            serde_json::to_string(&report).map_err(|e| Error::Runtime(format!("json: {e}")))?;
        writeln!(out, "{line}")?;
    } else {
        write!(out, "{}", crate::ops::bench::table(&report))?;
    }
    Ok(())
}

/// Receipts as typed; bytes that are not UTF-8 make an unknown receipt (exit 4), not a usage error.
fn text(args: &[std::ffi::OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The receipts an `ack`, `nack` or `extend` names: its arguments, a `-`
/// among them standing for the receipts on stdin (`ops::receipts`), read
/// once however many times `-` is given.
fn receipts_of(args: &[std::ffi::OsString]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stdin_read = false;
    for a in text(args) {
        if a != "-" {
            out.push(a);
        } else if !stdin_read {
            stdin_read = true;
            let stdin = std::io::stdin();
            let mut lock = std::io::BufReader::with_capacity(1 << 16, stdin.lock());
            out.extend(crate::ops::receipts::read(&mut lock, "stdin")?);
        }
    }
    Ok(out)
}

/// The figures of one queue, or of every queue.
fn collect_stats(spool: &Spool, queue: Option<&str>) -> Result<Vec<crate::queue::Stats>> {
    let names = match queue {
        Some(q) => vec![q.to_string()],
        None => spool.queues()?,
    };
    let mut rows = Vec::new();
    for name in names {
        let mut q = match spool.open_queue_read_only(&name)? {
            Some(q) => q,
            None if queue.is_none() => continue,
            None => return Err(Error::NoSuchQueue(name)),
        };
        rows.push(q.stats(now_ms())?);
    }
    Ok(rows)
}

/// Prints figures as JSON lines, a table (terminal) or tab-separated lines
/// (pipe); `rates` adds pushed/s and acked/s per row.
fn print_stats(
    out: &mut impl Write,
    rows: &[crate::queue::Stats],
    rates: Option<&[(f64, f64)]>,
    json: bool,
) -> std::result::Result<(), Failure> {
    use std::io::IsTerminal;
    let rate = |i: usize| rates.and_then(|r| r.get(i)).copied();
    if json {
        for (i, s) in rows.iter().enumerate() {
            let mut v = output::stats_value(s);
            if let (Some((p, a)), Some(obj)) = (rate(i), v.as_object_mut()) {
                obj.insert("pushed_per_sec".into(), serde_json::json!(p));
                obj.insert("acked_per_sec".into(), serde_json::json!(a));
            }
            writeln!(out, "{v}")?;
        }
    } else if std::io::stdout().is_terminal() {
        write!(out, "{}", output::stats_table(rows))?;
        if let Some(r) = rates {
            for (s, (p, a)) in rows.iter().zip(r) {
                writeln!(out, "{}: {p:.1} pushed/s, {a:.1} acked/s", s.queue)?;
            }
        }
    } else {
        for (i, s) in rows.iter().enumerate() {
            match rate(i) {
                Some((p, a)) => writeln!(out, "{}\t{p:.1}\t{a:.1}", output::stats_tsv(s))?,
                None => writeln!(out, "{}", output::stats_tsv(s))?,
            }
        }
    }
    Ok(())
}

/// Opens the queue receipts belong to; a missing queue makes every receipt unknown.
fn open_for_receipts(spool: &Spool, name: &str, receipts: &[String]) -> Result<Queue> {
    spool.open_queue(name, false)?.ok_or_else(|| {
        Error::Stale(format!(
            "unknown receipt{} {}: queue {name} does not exist",
            if receipts.len() > 1 { "s" } else { "" },
            receipts
                .iter()
                .map(|r| r.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn print_problem(p: &fsck::Problem, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    if json {
        let line = serde_json::json!({
            "queue": p.queue,
            "file": p.file.display().to_string(),
            "offset": p.offset,
            "problem": p.what,
        });
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{p}")
    }
}

fn run_fsck(
    spool: &Spool,
    queue: Option<String>,
    repair: bool,
    json: bool,
    out: &mut impl Write,
) -> std::result::Result<(), Failure> {
    let names = match queue {
        Some(q) => {
            // What `spool.queues()` lists (for fs, damaged queues too).
            if !spool.queues()?.contains(&q) {
                return Err(Error::NoSuchQueue(q).into());
            }
            vec![q]
        }
        None => spool.queues()?,
    };
    let (mut records, mut found, mut left) = (0u64, 0usize, 0usize);
    // The spool's own files first: a repaired `.store` is what the rest reads.
    let root = fsck::check_spool(spool, repair)?;
    root.notes.iter().cloned().for_each(warn);
    found += root.problems.len();
    left += root.left.len();
    for p in &root.problems {
        print_problem(p, json, out)?;
    }
    for p in root.left.iter().filter(|_| repair) {
        writeln!(out, "after repair: {p}")?;
    }
    let bar = progress("checking {msg} {spinner}");
    for name in &names {
        input::queue_name(name)?;
        bar.set_message(name.clone());
        bar.tick();
        let (first, second) = fsck::run(spool, name, repair)?;
        first.notes.iter().cloned().for_each(warn);
        records += first.records;
        found += first.problems.len();
        for p in &first.problems {
            print_problem(p, json, out)?;
        }
        match second {
            Some(s) => {
                s.notes.iter().cloned().for_each(warn);
                for p in &s.problems {
                    writeln!(out, "after repair: {p}")?;
                }
                left += s.problems.len();
            }
            None => left += first.problems.len(),
        }
        // Encrypted queues: the bodies' authentication tags, with the key.
        match fsck::check_bodies(spool, name, repair)? {
            Ok(bad) => {
                found += bad.len();
                if !repair {
                    left += bad.len();
                }
                for p in &bad {
                    print_problem(p, json, out)?;
                }
            }
            Err(why) => warn(format!("{name}: {why}")),
        }
    }
    bar.finish_and_clear();
    // A `retry --to` cut short that damage to its queues stopped is
    // finished now that they are repaired.
    if repair
        && root.left.iter().any(fsck::is_cut_short_move)
        && fsck::finish_cut_short_move(spool)?
    {
        left -= 1;
    }
    let summary = format!(
        "fsck: {} queue{}, {records} records, {found} problem{}{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        if found == 1 { "" } else { "s" },
        match (repair, found, left) {
            (true, f, 0) if f > 0 => ", all repaired".to_string(),
            (true, f, l) if f > 0 => format!(", {l} left after repair"),
            _ => String::new(),
        }
    );
    if json {
        let line = serde_json::json!({
            "queues": names.len(),
            "records": records,
            "problems": found,
            "left": left,
            "repaired": repair && found > 0 && left == 0,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "{summary}")?;
    }
    if left > 0 {
        out.flush()?;
        return Err(Error::Runtime(format!(
            "{left} problem{} found{}",
            if left == 1 { "" } else { "s" },
            if repair {
                " after repair"
            } else {
                "; run `spoolmq fsck --repair`"
            }
        ))
        .into());
    }
    Ok(())
}
