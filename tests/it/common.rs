// Shared helpers: a fresh temporary spool per test and thin wrappers that run the real
// `spoolmq` binary against it, checking on every single run that nothing panicked.
//
// Included once per store by `tests/it/main.rs` (`env_fs`, `env_sqlite`,
// `env_pg`), inside a module that defines `STORE`, the store the suites in
// that module run on; every command the helpers run gets `SPOOLMQ_STORE`
// set to it.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// Upper bound for any single invocation: a hung binary fails the test instead of hanging it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the binary under test (for `std::process::Command` spawns).
pub const BIN: &str = env!("CARGO_BIN_EXE_spoolmq");

/// `$PATH` with the directory of the spoolmq under test first, for scripts
/// that call `spoolmq` by name.
pub fn path_with_bin() -> String {
    let bin_dir = std::path::Path::new(BIN).parent().expect("the binary's directory");
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The PostgreSQL server the `postgres` tests use: `SPOOLMQ_TEST_PG_URL`
/// (`.ci/run` starts one with `scripts/pg-server.sh`). Those tests are
/// compiled only when it is set at build time (`build.rs`: without it
/// `postgres_tests_skipped` says they were skipped, and fails under
/// `CI=true`), so here a missing URL means it was unset between building
/// and running: a failure, not a skip.
pub fn pg_base_url() -> String {
    match std::env::var("SPOOLMQ_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SPOOLMQ_TEST_PG_URL was set when the tests were built but is not set now: set it again (or rebuild without it to skip the PostgreSQL tests)"
        ),
    }
}

/// The certificate of the CA that signed the test server's TLS certificate
/// (`SPOOLMQ_TEST_PG_CA`, from `scripts/pg-server.sh ca`). None: the server
/// offers no TLS, and the tests that need it are skipped, except under
/// `CI=true`, where that is a failure.
pub fn pg_test_ca() -> Option<String> {
    match std::env::var("SPOOLMQ_TEST_PG_CA") {
        Ok(ca) if !ca.is_empty() => Some(ca),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but SPOOLMQ_TEST_PG_CA is not set: the TLS test cannot be skipped in CI"
            )
        }
        _ => {
            eprintln!("skipped: SPOOLMQ_TEST_PG_CA is not set (the test server offers no TLS)");
            None
        }
    }
}

/// A schema of its own in the test server, dropped with the test's spool.
pub struct PgSchema {
    pub name: String,
    pub url: String,
    /// Held while the schema is in use: a test that restarts the server
    /// ([`pg_server_alone`]) waits for every other PostgreSQL test.
    _server: Option<PgShare>,
}

/// Who uses the test server: (schemas in use, whether a test wants or has
/// it alone), and the condition its changes are signalled on.
static PG_USERS: (std::sync::Mutex<(usize, bool)>, std::sync::Condvar) =
    (std::sync::Mutex::new((0, false)), std::sync::Condvar::new());

thread_local! {
    /// This thread has the server alone: its own schemas take no share.
    static PG_ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn pg_users() -> std::sync::MutexGuard<'static, (usize, bool)> {
    PG_USERS.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`pg_users`] once `busy` no longer holds of it.
fn pg_users_once(
    busy: impl FnMut(&mut (usize, bool)) -> bool,
) -> std::sync::MutexGuard<'static, (usize, bool)> {
    PG_USERS
        .1
        .wait_while(pg_users(), busy)
        .unwrap_or_else(|e| e.into_inner())
}

/// A share of the test server, given back when dropped.
struct PgShare;

impl PgShare {
    /// Waits while a test has the server alone (or waits for it).
    fn take() -> PgShare {
        pg_users_once(|u| u.1).0 += 1;
        PgShare
    }
}

impl Drop for PgShare {
    fn drop(&mut self) {
        pg_users().0 -= 1;
        PG_USERS.1.notify_all();
    }
}

/// The test server alone, until dropped.
pub struct PgAlone;

impl Drop for PgAlone {
    fn drop(&mut self) {
        pg_users().1 = false;
        PG_ALONE.with(|a| a.set(false));
        PG_USERS.1.notify_all();
    }
}

/// Waits until no other PostgreSQL test uses the server, and keeps new ones
/// waiting until the guard is dropped: for a test that restarts the server.
pub fn pg_server_alone() -> PgAlone {
    pg_users_once(|u| u.1).1 = true;
    drop(pg_users_once(|u| u.0 > 0));
    PG_ALONE.with(|a| a.set(true));
    PgAlone
}

impl PgSchema {
    fn new() -> PgSchema {
        let server = (!PG_ALONE.with(|a| a.get())).then(PgShare::take);
        let base = pg_base_url();
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).unwrap();
        let name = format!("t_{:016x}", u64::from_le_bytes(tag));
        let mut c = postgres::Client::connect(&base, postgres::NoTls).expect("the test server");
        c.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema {
            name,
            url,
            _server: server,
        }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&pg_base_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}


/// For a test about the fs store's own files: true (and a note on stderr)
/// when this binary runs the suite on another store, so the test returns.
pub fn not_on_this_store(why: &str) -> bool {
    if STORE == "fs" {
        return false;
    }
    eprintln!("skipped on the {STORE} store: {why}");
    true
}

/// A temporary directory holding a spool that does not exist yet (`<tmp>/spool`), so every
/// test also exercises the creation of the spool directory.
pub struct Spool {
    pub tmp: TempDir,
    pub dir: PathBuf,
    /// For the postgres store: the test's schema and the URL that selects it.
    pub pg: Option<PgSchema>,
}

/// `spoolmq --dir DIR ...` with every other way of choosing a spool removed from the
/// environment, empty stdin and a timeout.
#[allow(deprecated)]
pub fn spoolmq(dir: &Path) -> Command {
    let mut cmd = bare_spoolmq();
    cmd.arg("--dir").arg(dir);
    cmd
}

/// `spoolmq` without `--dir`, with `SPOOLMQ_DIR` and `XDG_DATA_HOME` removed, empty stdin
/// and a timeout. Callers choose the spool through the environment.
#[allow(deprecated)]
pub fn bare_spoolmq() -> Command {
    let mut cmd = Command::cargo_bin("spoolmq").expect("the spoolmq binary is built");
    cmd.env_remove("SPOOLMQ_DIR")
        .env_remove("XDG_DATA_HOME")
        .env_remove("SPOOLMQ_URL")
        .env_remove("SPOOLMQ_KEY_FILE")
        .env(
            "SPOOLMQ_STORE",
            if STORE == "postgres" { "" } else { STORE },
        )
        .envs(PG_VARS.iter().map(|k| (k, "")))
        .timeout(RUN_TIMEOUT)
        .write_stdin(Vec::<u8>::new());
    cmd
}

/// libpq's variables spoolmq reads: emptied (empty counts as unset) for
/// every run, so that the developer's own do not change what tests see.
pub const PG_VARS: [&str; 11] = [
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "PGOPTIONS",
];

/// `spoolmq keygen > path`, through a real file descriptor (so that keygen,
/// not the test, decides the file's mode); returns `path`.
pub fn keygen_into(path: &Path) -> PathBuf {
    let file = fs::File::create(path).expect("a key file");
    let status = std::process::Command::new(BIN)
        .arg("keygen")
        .stdout(file)
        .status()
        .expect("keygen runs");
    assert!(status.success(), "keygen failed");
    path.to_path_buf()
}

/// `spoolmq --key-file KEY ARGS` on spool `s`.
pub fn keyed(s: &Spool, key: &Path, args: &[&str]) -> Out {
    run(s.cmd().arg("--key-file").arg(key).args(args))
}

/// The result of one finished invocation.
pub struct Out {
    pub what: String,
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

fn describe(cmd: &Command) -> String {
    cmd.get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion; panics if it was killed, timed out, or printed "panicked".
pub fn run(cmd: &mut Command) -> Out {
    let what = describe(cmd);
    let output = cmd.output().expect("spoolmq could be started");
    finish(what, output.status, output.stdout, output.stderr)
}

fn finish(what: String, status: std::process::ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Out {
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    let code = match status.code() {
        Some(c) => c,
        None => panic!(
            "`spoolmq {what}` did not exit normally ({status:?}: killed by a signal or timed out)\nstderr: {stderr}"
        ),
    };
    assert!(
        !stderr.contains("panicked"),
        "`spoolmq {what}` panicked:\n{stderr}"
    );
    Out {
        what,
        code,
        stdout,
        stderr,
    }
}

impl Out {
    fn context(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.stdout).into_owned();
        if out.len() > 2000 {
            let mut cut = 2000;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            out.push_str("...[truncated]");
        }
        format!(
            "`spoolmq {}` exited {}\nstdout: {out:?}\nstderr: {:?}",
            self.what, self.code, self.stderr
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            expected,
            "unexpected exit code\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    /// Asserts the exit code and that stderr is exactly one line starting `spoolmq: `.
    #[track_caller]
    pub fn fails(&self, expected: i32) -> &Self {
        self.code(expected);
        self.error_line();
        self
    }

    /// The single stderr line of an error (asserts there is exactly one, starting `spoolmq: `).
    #[track_caller]
    pub fn error_line(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one stderr line\n{}",
            self.context()
        );
        assert!(
            lines[0].starts_with("spoolmq: "),
            "the error line must start with `spoolmq: `\n{}",
            self.context()
        );
        lines[0].to_string()
    }

    #[track_caller]
    pub fn stdout_str(&self) -> String {
        String::from_utf8(self.stdout.clone())
            .unwrap_or_else(|_| panic!("stdout is not UTF-8\n{}", self.context()))
    }

    /// Stdout split into lines (without the newlines).
    #[track_caller]
    pub fn lines(&self) -> Vec<String> {
        self.stdout_str().lines().map(str::to_string).collect()
    }

    /// Stdout parsed as one JSON value per line.
    #[track_caller]
    pub fn json(&self) -> Vec<Value> {
        let text = self.stdout_str();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "JSON lines output must end with a newline\n{}",
            self.context()
        );
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("line {l:?} is not JSON ({e})\n{}", self.context()))
            })
            .collect()
    }

    #[track_caller]
    pub fn stdout_empty(&self) -> &Self {
        assert!(
            self.stdout.is_empty(),
            "expected no stdout\n{}",
            self.context()
        );
        self
    }
}

impl Spool {
    pub fn new() -> Spool {
        let tmp = tempfile::Builder::new()
            .prefix("spoolmq-test-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().join("spool");
        let pg = (STORE == "postgres").then(PgSchema::new);
        Spool { tmp, dir, pg }
    }

    /// The URL of the test's PostgreSQL schema, for the postgres store.
    pub fn url(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.url.as_str())
    }

    /// The temporary directory around the spool (for scratch files).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    pub fn queue_dir(&self, q: &str) -> PathBuf {
        self.dir.join(q)
    }

    /// `spoolmq --dir <spool>` (HOME pointed into the temp dir as a safety net).
    pub fn cmd(&self) -> Command {
        let mut cmd = spoolmq(&self.dir);
        cmd.env("HOME", self.tmp.path().join("home"));
        if let Some(url) = self.url() {
            cmd.env("SPOOLMQ_URL", url);
        }
        cmd
    }

    /// `spoolmq` run in the scratch directory with the spool named only on
    /// the command line, as a user would type it: `--dir spool` (relative)
    /// or, for the postgres store, `--url URL` with no `SPOOLMQ_URL`.
    pub fn cmd_with_spool_flag(&self) -> Command {
        let mut cmd = bare_spoolmq();
        match self.url() {
            Some(url) => cmd.arg("--url").arg(url),
            None => cmd.arg("--dir").arg("spool"),
        };
        cmd.current_dir(self.tmp.path())
            .env("HOME", self.tmp.path().join("home"));
        cmd
    }

    /// The same as `cmd()`, as a plain `std::process::Command` (stdin null) for spawning.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("--dir")
            .arg(&self.dir)
            .env_remove("SPOOLMQ_DIR")
            .env_remove("XDG_DATA_HOME")
            .env_remove("SPOOLMQ_URL")
            .env_remove("SPOOLMQ_KEY_FILE")
            .env("SPOOLMQ_STORE", STORE)
            .env("HOME", self.tmp.path().join("home"))
            .envs(PG_VARS.iter().map(|k| (k, "")))
            .stdin(Stdio::null());
        if let Some(url) = self.url() {
            cmd.env("SPOOLMQ_URL", url);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Out {
        run(self.cmd().args(args))
    }

    /// `spoolmq ARGS REDIRECT` run by `sh -c 'exec "$0" "$@" REDIRECT'`, so
    /// the shell sets up the descriptors as a user's would (`>&-`, `<&-`,
    /// `>/dev/full`, `</dev/null`).
    pub fn run_redirected(&self, redirect: &str, args: &[&str]) -> Out {
        let inner = self.std_cmd();
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(format!("exec \"$0\" \"$@\" {redirect}"))
            .arg(inner.get_program())
            .args(inner.get_args())
            .args(args);
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        let mut cmd = Command::from_std(sh);
        cmd.timeout(RUN_TIMEOUT);
        run(&mut cmd)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        run(self.cmd().args(args).write_stdin(stdin.to_vec()))
    }

    /// `push QUEUE BODY...`; asserts exit 0 and one fresh id per body.
    #[track_caller]
    pub fn push(&self, q: &str, bodies: &[&str]) -> Vec<String> {
        let mut args = vec!["push", q];
        args.extend_from_slice(bodies);
        let out = self.run(&args);
        out.ok();
        let ids = out.lines();
        assert_eq!(ids.len(), bodies.len(), "one id per body: {ids:?}");
        for id in &ids {
            assert!(is_id(id), "not a message id: {id:?}");
        }
        ids
    }

    /// `push QUEUE` with `body` on stdin; asserts exit 0 and returns the one id.
    #[track_caller]
    pub fn push_stdin(&self, q: &str, body: &[u8]) -> String {
        let out = self.run_stdin(&["push", q], body);
        out.ok();
        let ids = out.lines();
        assert_eq!(ids.len(), 1, "stdin is one message: {ids:?}");
        assert!(is_id(&ids[0]), "not a message id: {:?}", ids[0]);
        ids[0].clone()
    }

    /// `pop QUEUE --json EXTRA...`; asserts exit 0 and returns the messages.
    #[track_caller]
    pub fn pop_json(&self, q: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["pop", q, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.ok();
        let msgs = out.json();
        for m in &msgs {
            check_delivery(m);
        }
        msgs
    }

    /// `pop QUEUE --json EXTRA...` that must deliver exactly one message.
    #[track_caller]
    pub fn pop_one(&self, q: &str, extra: &[&str]) -> Value {
        let mut msgs = self.pop_json(q, extra);
        assert_eq!(msgs.len(), 1, "expected one message: {msgs:?}");
        msgs.remove(0)
    }

    /// `pop QUEUE EXTRA...` that must find nothing: exit 3, no stdout.
    #[track_caller]
    pub fn pop_nothing(&self, q: &str, extra: &[&str]) {
        let mut args = vec!["pop", q, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.code(3).stdout_empty();
        assert!(
            out.stderr.lines().count() <= 1,
            "at most one stderr line: {:?}",
            out.stderr
        );
    }

    /// `peek QUEUE --json EXTRA...`; asserts success (exit 0) and returns the messages.
    #[track_caller]
    pub fn peek_json(&self, q: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["peek", q, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.ok();
        out.json()
    }

    /// `ack QUEUE RECEIPT...` that must succeed silently.
    #[track_caller]
    pub fn ack(&self, q: &str, receipts: &[&str]) {
        let mut args = vec!["ack", q];
        args.extend_from_slice(receipts);
        self.run(&args).ok().stdout_empty();
    }

    /// `nack QUEUE RECEIPT... EXTRA...` that must succeed silently.
    #[track_caller]
    pub fn nack(&self, q: &str, receipts: &[&str], extra: &[&str]) {
        let mut args = vec!["nack", q];
        args.extend_from_slice(receipts);
        args.extend_from_slice(extra);
        self.run(&args).ok().stdout_empty();
    }

    /// `stats QUEUE --json`: the one object for that queue.
    #[track_caller]
    pub fn stats(&self, q: &str) -> Value {
        let out = self.run(&["stats", q, "--json"]);
        out.ok();
        let mut objs = out.json();
        assert_eq!(objs.len(), 1, "stats QUEUE prints one object: {objs:?}");
        let obj = objs.remove(0);
        assert_eq!(obj["queue"], q, "stats object names its queue: {obj}");
        obj
    }

    /// `stats --json` for every queue.
    #[track_caller]
    pub fn stats_all(&self) -> Vec<Value> {
        let out = self.run(&["stats", "--json"]);
        out.ok();
        out.json()
    }

    /// Pushes `bodies` and turns every one of them into a dead letter (pop and nack with
    /// `--max-attempts 1`). Returns their ids.
    #[track_caller]
    pub fn make_dead(&self, q: &str, bodies: &[&str]) -> Vec<String> {
        let ids = self.push(q, bodies);
        let n = bodies.len().to_string();
        let msgs = self.pop_json(q, &["--count", &n, "--max-attempts", "1"]);
        assert_eq!(msgs.len(), bodies.len());
        let receipts: Vec<&str> = msgs.iter().map(receipt).collect();
        self.nack(q, &receipts, &["--max-attempts", "1"]);
        ids
    }

    /// Spawns `spoolmq --dir <spool> ARGS...` in the background, stdout and stderr captured.
    pub fn spawn(&self, args: &[&str]) -> Bg {
        let mut cmd = self.std_cmd();
        cmd.args(args);
        Bg::spawn(cmd, args.join(" "))
    }

    /// Every file ending `.seg` under the queue directory, sorted.
    pub fn segment_files(&self, q: &str) -> Vec<PathBuf> {
        let mut segs: Vec<PathBuf> = walk(&self.queue_dir(q))
            .into_iter()
            .filter(|p| p.is_file() && p.to_string_lossy().ends_with(".seg"))
            .collect();
        segs.sort();
        segs
    }
}

/// A background process whose stdout and stderr go to anonymous temp files.
pub struct Bg {
    child: Option<Child>,
    out: fs::File,
    err: fs::File,
    what: String,
    pub started: Instant,
}

impl Bg {
    pub fn spawn(mut cmd: std::process::Command, what: String) -> Bg {
        let out = tempfile::tempfile().expect("temp file");
        let err = tempfile::tempfile().expect("temp file");
        cmd.stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap());
        let child = cmd.spawn().expect("spoolmq could be spawned");
        Bg {
            child: Some(child),
            out,
            err,
            what,
            started: Instant::now(),
        }
    }

    /// As [`Bg::spawn`], but `cmd` keeps the stdout it was given.
    pub fn spawn_with_stdout(mut cmd: std::process::Command, what: String) -> Bg {
        let out = tempfile::tempfile().expect("temp file");
        let err = tempfile::tempfile().expect("temp file");
        cmd.stderr(err.try_clone().unwrap());
        let child = cmd.spawn().expect("spoolmq could be spawned");
        // The parent's copy of a pipe end given as stdout goes with `cmd`.
        drop(cmd);
        Bg {
            child: Some(child),
            out,
            err,
            what,
            started: Instant::now(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILLs the process if it is still running and reaps it. Returns
    /// whether it was killed (false: it had finished on its own).
    pub fn kill9_if_running(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let running = child.try_wait().unwrap().is_none();
        if running {
            let _ = child.kill();
        }
        let _ = child.wait();
        running
    }

    /// Whether the process has exited yet.
    pub fn finished(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Waits at most `limit` (from now) for the process to exit; kills it and panics otherwise.
    pub fn wait(mut self, limit: Duration) -> Out {
        let deadline = Instant::now() + limit;
        let mut child = self.child.take().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`spoolmq {}` still running after {limit:?}", self.what);
            }
            thread::sleep(Duration::from_millis(10));
        };
        let read = |f: &mut fs::File| {
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut buf).unwrap();
            buf
        };
        let stdout = read(&mut self.out);
        let stderr = read(&mut self.err);
        finish(self.what.clone(), status, stdout, stderr)
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().expect("kill -9");
        let _ = child.wait();
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The clock, in ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

/// A message id: 16 lowercase hex characters.
pub fn is_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A receipt: 40 lowercase hex characters.
pub fn is_receipt(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the shape of one `pop --json` object: id, receipt, attempt >= 1, and exactly one of
/// `body` / `body_base64`.
#[track_caller]
pub fn check_delivery(m: &Value) {
    assert!(m.is_object(), "a delivery is an object: {m}");
    assert!(m["id"].as_str().is_some_and(is_id), "bad id in {m}");
    assert!(
        m["receipt"].as_str().is_some_and(is_receipt),
        "bad receipt in {m}"
    );
    assert!(
        m["attempt"].as_u64().is_some_and(|a| a >= 1),
        "bad attempt in {m}"
    );
    let has_body = m.get("body").is_some();
    let has_b64 = m.get("body_base64").is_some();
    assert!(
        has_body != has_b64,
        "exactly one of body/body_base64 in {m}"
    );
}

#[track_caller]
pub fn id(m: &Value) -> &str {
    m["id"].as_str().unwrap_or_else(|| panic!("no id in {m}"))
}

#[track_caller]
pub fn receipt(m: &Value) -> &str {
    m["receipt"]
        .as_str()
        .unwrap_or_else(|| panic!("no receipt in {m}"))
}

#[track_caller]
pub fn attempt(m: &Value) -> u64 {
    m["attempt"]
        .as_u64()
        .unwrap_or_else(|| panic!("no attempt in {m}"))
}

/// The `body` field, which must be present (the body is valid UTF-8).
#[track_caller]
pub fn body(m: &Value) -> &str {
    assert!(
        m.get("body_base64").is_none(),
        "unexpected body_base64 in {m}"
    );
    m["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no string body in {m}"))
}

/// The body bytes, from `body` or `body_base64`.
#[track_caller]
pub fn body_bytes(m: &Value) -> Vec<u8> {
    if let Some(b) = m.get("body") {
        b.as_str()
            .unwrap_or_else(|| panic!("body is not a string in {m}"))
            .as_bytes()
            .to_vec()
    } else {
        let b = m["body_base64"]
            .as_str()
            .unwrap_or_else(|| panic!("no body nor body_base64 in {m}"));
        base64_decode(b)
    }
}

/// Bodies of a list of messages (all must be UTF-8).
pub fn bodies(msgs: &[Value]) -> Vec<String> {
    msgs.iter().map(|m| body(m).to_string()).collect()
}

/// A numeric field of a stats object.
#[track_caller]
pub fn num(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("field {field:?} missing or not a non-negative integer in {v}"))
}

/// Asserts several numeric fields of a stats object at once.
/// `pushed` is the sum of the states: every message is counted once.
#[track_caller]
pub fn assert_counters_add_up(st: &Value) {
    let sum: u64 = [
        "ready", "leased", "delayed", "dead", "acked", "purged", "corrupt",
    ]
    .iter()
    .map(|f| num(st, f))
    .sum();
    assert_eq!(num(st, "pushed"), sum, "counters do not add up: {st}");
}

#[track_caller]
pub fn assert_counts(v: &Value, expected: &[(&str, u64)]) {
    let got: Vec<(&str, u64)> = expected.iter().map(|(k, _)| (*k, num(v, k))).collect();
    assert_eq!(got, expected, "stats mismatch in {v}");
}

/// Standard (or URL-safe) base64, padding optional.
#[track_caller]
pub fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => panic!("invalid base64 character {c:?} in {s:?}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Every path below `dir` (files and directories, not following symlinks); empty if absent.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                todo.push(p.clone());
            }
            found.push(p);
        }
    }
    found.sort();
    found
}

/// Index of the first occurrence of `needle` in `hay`.
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// xorshift64: a deterministic, seeded random source for the fault tests.
pub struct Rng(pub u64);

impl Rng {
    /// A generator whose stream depends on `seed` (never the all-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn byte_nonzero(&mut self) -> u8 {
        (self.below(255) + 1) as u8
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Random bytes, between `lo` and `hi` of them.
    pub fn garbage(&mut self, lo: u64, hi: u64) -> Vec<u8> {
        let n = self.range(lo, hi) as usize;
        self.bytes(n)
    }
    /// `n` printable bytes (no newline).
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b'a' + (self.next() % 26) as u8).collect()
    }
}

/// `spoolmq --dir DIR ARGS` run as `uid` with only `groups` (root needed).
pub fn as_user(s: &Spool, uid: u32, groups: &[u32], args: &[&str]) -> Out {
    use std::os::unix::process::CommandExt;
    let mut std = s.std_cmd();
    std.args(args).env("HOME", "/nonexistent");
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(groups[0]) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut cmd = assert_cmd::Command::from_std(std);
    cmd.timeout(RUN_TIMEOUT).write_stdin(Vec::<u8>::new());
    run(&mut cmd)
}

/// The checked-in fixture `tests/fixtures/NAME` (a `.tar.gz` of spools made
/// by an older release) extracted into a new temporary directory.
pub fn fixture(name: &str) -> TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&path)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar -xzf {}", path.display());
    tmp
}
