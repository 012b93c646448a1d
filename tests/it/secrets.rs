// Secrets: key files made and read without a window for other users
// (`keygen --output`, one descriptor checked before it is read), and the
// PostgreSQL password kept off the command line and out of clear text
// (libpq's PG* variables and password file, TLS tried first, clear-text
// and MD5 password requests refused without verified TLS). The tests that
// need no database run in the fs binary (`tests/it/secrets.rs`); the ones that
// talk to the test server run in `tests/it/secrets.rs`, which includes this
// file.


use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// True (with a note) in the binary of a store these tests are not for: the
/// tests that need no database run once, in the fs binary.
fn not_here(want: &str) -> bool {
    if STORE == want {
        return false;
    }
    eprintln!("skipped on the {STORE} store: this test runs in the {want} binary");
    true
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// `spoolmq keygen ARGS` under `umask`, in directory `dir`.
fn keygen_with_umask(dir: &Path, umask: u32, args: &[&str]) -> Out {
    let mut std = std::process::Command::new(BIN);
    std.current_dir(dir).arg("keygen").args(args);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        std.pre_exec(move || {
            libc::umask(umask as libc::mode_t);
            Ok(())
        });
    }
    let mut cmd = assert_cmd::Command::from_std(std);
    cmd.timeout(RUN_TIMEOUT).write_stdin(Vec::<u8>::new());
    run(&mut cmd)
}

#[test]
fn keygen_output_creates_the_file_0600_whatever_the_umask_and_never_overwrites() {
    if not_here("fs") {
        return;
    }
    let s = Spool::new();
    for (umask, name) in [(0o022, "k022"), (0o000, "k000"), (0o277, "k277")] {
        let out = keygen_with_umask(s.scratch(), umask, &["--output", name]);
        out.ok().stdout_empty();
        let key = s.scratch().join(name);
        assert_eq!(mode(&key), 0o600, "umask {umask:03o}");
        // A key that works.
        keyed(&s, &key, &["push", "q", "x"]).ok();
        assert_eq!(body(&s.pop_json_keyed(&key, "q")), "x");
        s.run(&["purge", "q"]).ok();
        fs::remove_dir_all(&s.dir).unwrap();
    }
    // An existing file is refused and left as it was; so is a symlink,
    // which is not followed.
    let key = s.scratch().join("k022");
    let before = fs::read(&key).unwrap();
    let out = keygen_with_umask(s.scratch(), 0o022, &["--output", "k022"]);
    out.fails(1).stdout_empty();
    assert!(
        out.error_line().contains("already exists"),
        "{}",
        out.error_line()
    );
    assert_eq!(fs::read(&key).unwrap(), before, "the old key is untouched");
    let target = s.scratch().join("target");
    std::os::unix::fs::symlink(&target, s.scratch().join("link")).unwrap();
    keygen_with_umask(s.scratch(), 0o022, &["-o", "link"]).fails(1);
    assert!(!target.exists(), "the link was not followed");
    // A directory that does not exist: one line, exit 1.
    let out = keygen_with_umask(s.scratch(), 0o022, &["-o", "nodir/k"]);
    out.fails(1);
    assert!(out.error_line().contains("nodir/k"), "{}", out.error_line());
    // The stdout form still works.
    let printed = keygen_with_umask(s.scratch(), 0o022, &[]);
    printed.ok();
    assert!(printed.stdout_str().contains("spoolmq-key-v1 "));
    // And the help shows the safe form.
    let help = run(bare_spoolmq().args(["keygen", "--help"]));
    help.ok();
    assert!(
        help.stdout_str().contains("keygen --output"),
        "{}",
        help.stdout_str()
    );
}

#[test]
fn a_key_file_that_is_a_device_a_fifo_a_link_or_huge_is_refused_at_once() {
    if not_here("fs") {
        return;
    }
    let s = Spool::new();
    let fifo = s.scratch().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // The stdout form, so that this test does not need --output.
    let real = keygen_into(&s.scratch().join("real"));
    let link = s.scratch().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let huge = s.scratch().join("huge");
    fs::write(&huge, vec![b'#'; 10 << 20]).unwrap();
    fs::set_permissions(&huge, fs::Permissions::from_mode(0o600)).unwrap();
    for (path, says) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (fifo.as_path(), "not a regular file"),
        (link.as_path(), "symbolic link"),
        (huge.as_path(), "larger than"),
    ] {
        let start = Instant::now();
        let out = keyed(&s, path, &["push", "q", "x"]);
        out.fails(1).stdout_empty();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            path.display(),
            start.elapsed()
        );
        assert!(out.error_line().contains(says), "{}", out.error_line());
    }
    assert!(!s.dir.join("q").exists(), "nothing was pushed");
}

#[test]
fn a_key_file_owned_by_another_user_is_refused() {
    if not_here("fs") {
        return;
    }
    if !is_root() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but not root: this test needs root to chown");
        }
        eprintln!("skipped: needs root (to give the key file to another user)");
        return;
    }
    let s = Spool::new();
    let key = keygen_into(&s.scratch().join("k"));
    keyed(&s, &key, &["push", "q", "mine"]).ok();
    std::os::unix::fs::chown(&key, Some(54321), None).unwrap();
    let out = keyed(&s, &key, &["pop", "q"]);
    out.fails(1).stdout_empty();
    assert!(
        out.error_line().contains("uid 54321"),
        "{}",
        out.error_line()
    );
    assert_eq!(s.stats("q")["leased"], 0, "nothing was leased");
}

impl SpoolExt for Spool {
    fn pop_json_keyed(&self, key: &Path, q: &str) -> serde_json::Value {
        let out = keyed(self, key, &["pop", q, "--json"]);
        out.ok();
        out.json().remove(0)
    }
}

trait SpoolExt {
    fn pop_json_keyed(&self, key: &Path, q: &str) -> serde_json::Value;
}

/// What a fake PostgreSQL server saw of one client: whether it asked for
/// TLS first, and every byte it sent after that.
struct Seen {
    ssl_request_first: bool,
    bytes: Vec<u8>,
}

/// A fake server on 127.0.0.1 that refuses TLS ('N'), asks for the
/// password with auth request `code` (3 clear text, 5 MD5), and records
/// what the client sends, for one connection, for at most 10 s.
fn fake_server(code: u32) -> (u16, std::thread::JoinHandle<Option<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if Instant::now() < deadline => sleep_ms(10),
                Err(_) => return None,
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut first = [0u8; 8];
        conn.read_exact(&mut first).ok()?;
        let ssl_request_first = first == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        let mut startup = Vec::new();
        if ssl_request_first {
            conn.write_all(b"N").ok()?;
            let mut len = [0u8; 4];
            conn.read_exact(&mut len).ok()?;
            startup.resize(u32::from_be_bytes(len) as usize - 4, 0);
        } else {
            startup.resize(
                u32::from_be_bytes(first[..4].try_into().unwrap()) as usize - 8,
                0,
            );
        }
        conn.read_exact(&mut startup).ok()?;
        let mut req = vec![b'R'];
        let extra: &[u8] = if code == 5 { b"salt" } else { b"" };
        req.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
        req.extend_from_slice(&code.to_be_bytes());
        req.extend_from_slice(extra);
        conn.write_all(&req).ok()?;
        // Whatever comes back, until the client hangs up, goes quiet, or
        // has sent one whole message (a password would be one).
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            bytes.extend_from_slice(&buf[..n]);
            if bytes.len() >= 5 {
                let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
                if bytes.len() > len {
                    break;
                }
            }
        }
        Some(Seen {
            ssl_request_first,
            bytes,
        })
    });
    (port, handle)
}

const SECRET: &str = "s3cret-pw-1f2e";

fn md5_hex(data: &[u8]) -> String {
    // A tiny MD5 (RFC 1321), to recognise the hash the client would send.
    let s: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_le_bytes());
    let mut h = [0x67452301u32, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in msg.chunks(64) {
        let w: Vec<u32> = chunk
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(w[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(s[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter()
        .flat_map(|x| x.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_server_without_tls_asking_for_a_clear_text_or_md5_password_does_not_get_it() {
    if not_here("fs") {
        return;
    }
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    // What the MD5 method would send: md5(md5(password user) salt).
    let inner = md5_hex(format!("{SECRET}alice").as_bytes());
    let md5_answer = md5_hex(&[inner.as_bytes(), b"salt"].concat());
    for code in [3u32, 5] {
        let (port, server) = fake_server(code);
        let url = format!("postgresql://alice@127.0.0.1:{port}/db");
        let out = run(bare_spoolmq()
            .env("SPOOLMQ_URL", &url)
            .env("PGPASSWORD", SECRET)
            .args(["stats"]));
        out.fails(1);
        let line = out.error_line();
        assert!(
            line.contains("refused, the password was not sent") && line.contains("sslmode"),
            "{line}"
        );
        let seen = server.join().unwrap().expect("spoolmq connected");
        assert!(seen.ssl_request_first, "prefer asks for TLS first");
        assert!(
            !contains(&seen.bytes, SECRET.as_bytes())
                && !contains(&seen.bytes, md5_answer.as_bytes()),
            "code {code}: the password reached the server: {:?}",
            String::from_utf8_lossy(&seen.bytes)
        );
        assert!(
            !seen.bytes.contains(&b'p'),
            "no password message at all: {:?}",
            seen.bytes
        );
    }
    // sslmode=disable is the user's explicit choice of clear text: then the
    // password goes (and no TLS is asked for).
    let (port, server) = fake_server(3);
    let url = format!("postgresql://alice@127.0.0.1:{port}/db?sslmode=disable");
    run(bare_spoolmq()
        .env("SPOOLMQ_URL", &url)
        .env("PGPASSWORD", SECRET)
        .args(["stats"]))
    .fails(1);
    let seen = server.join().unwrap().expect("spoolmq connected");
    assert!(!seen.ssl_request_first);
    assert!(contains(&seen.bytes, SECRET.as_bytes()));
    // So does PGSSLMODE=disable.
    let (port, server) = fake_server(3);
    let url = format!("postgresql://alice@127.0.0.1:{port}/db");
    run(bare_spoolmq()
        .env("SPOOLMQ_URL", &url)
        .env("PGSSLMODE", "disable")
        .env("PGPASSWORD", SECRET)
        .args(["stats"]))
    .fails(1);
    let seen = server.join().unwrap().expect("spoolmq connected");
    assert!(!seen.ssl_request_first && contains(&seen.bytes, SECRET.as_bytes()));
}

#[test]
fn a_url_that_names_an_option_twice_or_a_bad_sslmode_is_a_usage_error() {
    if not_here("fs") {
        return;
    }
    for url in [
        "postgresql://u@127.0.0.1:1/db?sslmode=require&sslmode=disable",
        "host=127.0.0.1 port=1 sslmode=require sslmode=disable",
        "postgresql://u@127.0.0.1:1/db?sslmode=allow",
    ] {
        let out = run(bare_spoolmq().args(["--url", url, "stats"]));
        out.fails(2);
        assert!(out.error_line().contains("sslmode"), "{}", out.error_line());
        let out = run(bare_spoolmq().env("SPOOLMQ_URL", url).args(["stats"]));
        out.fails(2);
    }
    let out = run(bare_spoolmq()
        .env("SPOOLMQ_URL", "postgresql://u@127.0.0.1:1/db")
        .env("PGSSLMODE", "sometimes")
        .args(["stats"]));
    out.fails(2);
    assert!(
        out.error_line().contains("PGSSLMODE"),
        "{}",
        out.error_line()
    );
}

#[test]
fn a_password_in_url_on_the_command_line_is_warned_about_and_not_in_spoolmq_url() {
    if not_here("fs") {
        return;
    }
    let url = "postgresql://u:hunter2@127.0.0.1:1/db";
    let out = run(bare_spoolmq().args(["--url", url, "stats"]));
    out.code(1);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(
        lines[0].starts_with("spoolmq: warning: ") && lines[0].contains("PGPASSWORD"),
        "{}",
        lines[0]
    );
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    // The same URL from the environment is nobody else's to read.
    let out = run(bare_spoolmq().env("SPOOLMQ_URL", url).args(["stats"]));
    out.fails(1);
    assert!(!out.error_line().contains("warning"));
    // No password: no warning.
    let out = run(bare_spoolmq().args(["--url", "postgresql://u@127.0.0.1:1/db", "stats"]));
    out.fails(1);
    // A key=value string too.
    let out = run(bare_spoolmq().args(["--url", "host=127.0.0.1 port=1 password=x", "stats"]));
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
}

const PG_PASSWORD: &str = "spoolmq-test-password-7c1d";

/// The URL of the test's schema as `role`, without a password, for one of
/// the roles scripts/pg-server.sh makes ask for a password (created here,
/// once per test binary). None (skipped; a failure under CI) when the
/// server does not ask that role for a password.
fn password_role(s: &Spool, role: &str) -> Option<String> {
    static MADE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
        for r in ["spoolmq_scram", "spoolmq_clear"] {
            c.batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {r} LOGIN SUPERUSER; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
                 ALTER ROLE {r} PASSWORD '{PG_PASSWORD}'"
            ))
            .unwrap();
        }
    });
    let url = s.url()?.replacen("://postgres@", &format!("://{role}@"), 1);
    let out = run(bare_spoolmq()
        .env("SPOOLMQ_URL", &url)
        .env("PGSSLMODE", "disable")
        .args(["stats"]));
    if out.code == 0 || !url.contains(role) {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "CI=true but the test server does not ask {role} for a password (scripts/pg-server.sh sets that up)"
            );
        }
        eprintln!(
            "skipped: the test server does not ask {role} for a password (start it with scripts/pg-server.sh)"
        );
        return None;
    }
    Some(url)
}

/// `spoolmq` on the test's schema as `url`, with `env`.
fn pg_run(s: &Spool, url: &str, env: &[(&str, &str)], args: &[&str]) -> Out {
    let mut cmd = s.cmd();
    cmd.env("SPOOLMQ_URL", url);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd.args(args))
}

#[test]
fn pgpassword_and_a_password_file_connect_without_a_password_in_the_url() {
    if not_here("postgres") {
        return;
    }
    let s = Spool::new();
    let Some(url) = password_role(&s, "spoolmq_scram") else {
        return;
    };
    // Without a password: refused by the server.
    let out = pg_run(&s, &url, &[], &["push", "q", "x"]);
    out.fails(1);
    assert!(
        out.error_line().contains("password"),
        "{}",
        out.error_line()
    );
    // PGPASSWORD.
    pg_run(
        &s,
        &url,
        &[("PGPASSWORD", PG_PASSWORD)],
        &["push", "q", "one"],
    )
    .ok();
    // PGPASSFILE, with a line that does not match before the one that does.
    let file = s.scratch().join("pgpass");
    fs::write(
        &file,
        format!("# test\n*:*:*:someone_else:wrong\n127.0.0.1:*:*:spoolmq_scram:{PG_PASSWORD}\n"),
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let passfile = file.to_str().unwrap();
    pg_run(&s, &url, &[("PGPASSFILE", passfile)], &["push", "q", "two"]).ok();
    // ~/.pgpass.
    let home = s.scratch().join("home");
    fs::create_dir_all(&home).unwrap();
    fs::copy(&file, home.join(".pgpass")).unwrap();
    fs::set_permissions(home.join(".pgpass"), fs::Permissions::from_mode(0o600)).unwrap();
    let m = pg_run(&s, &url, &[], &["pop", "q", "--count", "2", "--json"]);
    m.ok();
    let bodies: Vec<String> = m.json().iter().map(|v| body(v).to_string()).collect();
    assert_eq!(bodies, ["one", "two"]);
    // A password file its group or others may read is ignored, with one
    // warning line, as libpq does.
    for f in [file.clone(), home.join(".pgpass")] {
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    }
    for env in [vec![("PGPASSFILE", passfile)], vec![]] {
        let out = pg_run(&s, &url, &env, &["stats"]);
        out.code(1);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{}", out.stderr);
        assert!(
            lines[0].starts_with("spoolmq: warning: password file")
                && lines[0].contains("0644")
                && lines[0].contains("chmod 600"),
            "{}",
            lines[0]
        );
    }
    assert!(!s.dir.exists(), "nothing was written to a directory");
}

#[test]
fn a_clear_text_password_request_is_refused_unless_tls_is_checked_or_sslmode_disable() {
    if not_here("postgres") {
        return;
    }
    let s = Spool::new();
    let Some(url) = password_role(&s, "spoolmq_clear") else {
        return;
    };
    let pw = [("PGPASSWORD", PG_PASSWORD)];
    // The default (prefer): TLS if the server has it, but nothing checks
    // who the server is, so it does not get the password in clear text.
    let out = pg_run(&s, &url, &pw, &["push", "q", "x"]);
    out.fails(1);
    assert!(
        out.error_line()
            .contains("refused, the password was not sent"),
        "{}",
        out.error_line()
    );
    // sslmode=disable: the user's explicit choice.
    pg_run(
        &s,
        &format!("{url}&sslmode=disable"),
        &pw,
        &["push", "q", "x"],
    )
    .ok();
    pg_run(&s, &url, &[pw[0], ("PGSSLMODE", "disable")], &["stats"]).ok();
    // TLS with the server's certificate checked: fine.
    let Some(ca) = pg_test_ca() else { return };
    let checked = format!("{url}&sslmode=verify-full&sslrootcert={ca}");
    pg_run(&s, &checked, &pw, &["push", "q", "y"]).ok();
    let env = [pw[0], ("PGSSLMODE", "require"), ("PGSSLROOTCERT", &ca)];
    pg_run(&s, &url, &env, &["stats"]).ok();
    // A wrong CA file: refused.
    let empty = s.scratch().join("empty.pem");
    fs::write(&empty, "").unwrap();
    let env = [
        pw[0],
        ("PGSSLMODE", "require"),
        ("PGSSLROOTCERT", empty.to_str().unwrap()),
    ];
    let out = pg_run(&s, &url, &env, &["stats"]);
    out.fails(1);
    assert!(
        out.error_line().contains("sslrootcert"),
        "{}",
        out.error_line()
    );
}

#[test]
fn the_default_sslmode_uses_tls_when_the_server_offers_it() {
    if not_here("postgres") {
        return;
    }
    let s = Spool::new();
    if pg_test_ca().is_none() {
        return;
    }
    let mut c = postgres::Client::connect(&pg_base_url(), postgres::NoTls).unwrap();
    for (extra, want) in [("", true), ("&sslmode=disable", false)] {
        let mut tag = [0u8; 6];
        getrandom::fill(&mut tag).unwrap();
        let app: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let app = format!("spoolmq-tls-{app}");
        let mut cmd = s.std_cmd();
        cmd.env("SPOOLMQ_URL", format!("{}{extra}", s.url().unwrap()))
            .env("PGAPPNAME", &app)
            .args(["pop", "q", "--wait", "20s"]);
        let bg = Bg::spawn(cmd, format!("pop --wait ({app})"));
        let mut ssl = Vec::new();
        wait_for(Duration::from_secs(15), || {
            ssl = c
                .query(
                    "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.application_name = $1",
                    &[&app],
                )
                .unwrap()
                .iter()
                .map(|r| r.get::<_, bool>(0))
                .collect();
            !ssl.is_empty()
        });
        bg.kill9();
        assert!(
            !ssl.is_empty(),
            "spoolmq's connection (PGAPPNAME={app}) was seen"
        );
        assert!(ssl.iter().all(|&t| t == want), "{extra:?}: TLS {ssl:?}");
    }
}

#[test]
fn a_member_of_a_shared_spool_uses_the_owners_key_and_not_another_members() {
    if not_here("fs") {
        return;
    }
    if !is_root() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but not root: this test runs commands as other users");
        }
        eprintln!("skipped: needs root to run commands as other users");
        return;
    }
    const GROUP: u32 = 60110;
    let (alice, bob, carol) = (60011, 60012, 60013);
    let s = Spool::new();
    fs::set_permissions(s.scratch(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(&s.dir).unwrap();
    std::os::unix::fs::lchown(&s.dir, Some(alice), Some(alice)).unwrap();
    as_user(&s, alice, &[GROUP], &["init", "--group", "60110"]).ok();
    // Alice's key, shared with the group (0640), and one carol made.
    let key = keygen_into(&s.scratch().join("alice.key"));
    let other = keygen_into(&s.scratch().join("carol.key"));
    for (k, owner) in [(&key, alice), (&other, carol)] {
        std::os::unix::fs::chown(k, Some(owner), Some(GROUP)).unwrap();
        fs::set_permissions(k, fs::Permissions::from_mode(0o640)).unwrap();
    }
    let k = key.to_str().unwrap();
    as_user(
        &s,
        alice,
        &[GROUP],
        &["--key-file", k, "push", "q", "secret"],
    )
    .ok();
    let got = as_user(&s, bob, &[GROUP], &["--key-file", k, "pop", "q", "--json"]);
    got.ok();
    assert_eq!(body(&got.json()[0]), "secret");
    // A key file another member owns could be changed by them: refused.
    let o = other.to_str().unwrap();
    let out = as_user(&s, bob, &[GROUP], &["--key-file", o, "push", "q2", "x"]);
    out.fails(1);
    assert!(
        out.error_line().contains("uid 60013"),
        "{}",
        out.error_line()
    );
}
