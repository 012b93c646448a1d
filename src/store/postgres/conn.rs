//! How spoolmq reaches a PostgreSQL server: the connection string read
//! with libpq's conventions (the `PG*` environment variables, the password
//! file), and the transport policy that keeps the password out of clear text.
//!
//! Settings, each taken from the first place that has it:
//!
//! ```text
//! the URL or key=value string > PG* variable > default
//! host PGHOST · port PGPORT (5432) · user PGUSER (the OS user) · dbname PGDATABASE
//! password PGPASSWORD, then the password file (passfile, PGPASSFILE, ~/.pgpass)
//! sslmode PGSSLMODE (prefer) · sslrootcert PGSSLROOTCERT (the system's roots)
//! connect_timeout PGCONNECT_TIMEOUT (10 s) · application_name PGAPPNAME (spoolmq)
//! options PGOPTIONS
//! ```
//!
//! A string that names an option twice is refused (`sslmode=require&sslmode=disable`
//! would otherwise mean whichever came last).
//!
//! Transport ([`Connector`]):
//! * `disable`: clear text, and the user said so: any password method.
//! * `prefer` (the default): TLS whenever the server offers it, without
//!   checking its certificate (like libpq: it defeats someone listening,
//!   not someone in the middle); clear text only if the server has no TLS.
//! * `require` (`verify-ca`, `verify-full`): TLS or nothing, with the
//!   server's certificate checked against `sslrootcert` or the system's
//!   roots and the host name (libpq's `verify-full`).
//!
//! The password itself: SCRAM never reveals it, but the clear-text
//! (`password`) and MD5 methods hand it, or something as good as it for a
//! dictionary, to whoever answers. rust-postgres answers whatever method the
//! server asks for, so spoolmq checks what the server asks before the client
//! sees it: tokio-postgres is told to use "direct" TLS, which hands the raw
//! socket to [`Connector`] before a byte is exchanged; the connector makes
//! the classic SSLRequest negotiation itself and returns a stream that, on
//! any connection whose server was not authenticated by a checked
//! certificate (clear text under `prefer`, or TLS under `prefer`), reads
//! the server's messages up to `AuthenticationOk` and fails the read that
//! would deliver a clear-text or MD5 password request. The client never
//! sees the request, so it never sends the password. Only `sslmode=disable`
//! (an explicit choice of clear text) or `require` lifts the check. A Unix
//! socket (a host that is a directory) carries no TLS and is not checked:
//! its directory's permissions decide who can listen there.

use crate::base::error::{Error, Result};
use postgres::Socket;
use postgres::config::{Config, Host};
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What `sslmode` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ssl {
    Disable,
    Prefer,
    Require,
}

/// A connection string with the environment's defaults filled in.
pub struct Target {
    /// Everything but the TLS settings and the password file's password.
    pub config: Config,
    pub ssl: Ssl,
    /// `sslrootcert`: a PEM file of the CAs to trust instead of the system's.
    pub root_cert: Option<PathBuf>,
    /// Where a password would be looked up when none was given.
    passfile: Option<PathBuf>,
}

/// The most a password file or a root certificate file may hold.
const MAX_FILE: u64 = 1 << 20;

fn usage(what: impl std::fmt::Display) -> Error {
    Error::usage(format!("--url: {what}"))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn decoded_str(s: &str, what: &str) -> Result<String> {
    String::from_utf8(percent_decode(s)).map_err(|_| usage(format!("{what} is not UTF-8")))
}

/// The options of a `postgres://` URL (without its scheme), in order, with
/// the URL's parts named as libpq names them. Splits as tokio-postgres does.
fn url_pairs(rest: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut s = rest;
    if let Some(at) = s.find('@') {
        let creds = &s[..at];
        s = &s[at + 1..];
        let mut it = creds.splitn(2, ':');
        let user = it.next().unwrap_or("");
        if !user.is_empty() {
            out.push(("user".into(), percent_decode(user)));
        }
        if let Some(pw) = it.next() {
            out.push(("password".into(), percent_decode(pw)));
        }
    }
    let end = s.find(['/', '?']).unwrap_or(s.len());
    let netloc = &s[..end];
    s = &s[end..];
    if !netloc.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for chunk in netloc.split(',') {
            let (host, port) = if let Some(r) = chunk.strip_prefix('[') {
                let idx = r.find(']').ok_or_else(|| usage("unclosed [ in a host"))?;
                let port = match &r[idx + 1..] {
                    "" => None,
                    p => Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| usage(format!("bad host {chunk}")))?,
                    ),
                };
                (&r[..idx], port)
            } else {
                let mut it = chunk.splitn(2, ':');
                (it.next().unwrap_or(""), it.next())
            };
            hosts.push(decoded_str(host, "a host")?);
            ports.push(port.map(|p| decoded_str(p, "a port")).transpose()?);
        }
        out.push(("host".into(), hosts.join(",").into_bytes()));
        // Only ports that were written: PGPORT applies to the others.
        if ports.iter().any(Option::is_some) {
            let ports: Vec<String> = ports.into_iter().map(Option::unwrap_or_default).collect();
            out.push(("port".into(), ports.join(",").into_bytes()));
        }
    }
    if let Some(path) = s.strip_prefix('/') {
        let end = path.find('?').unwrap_or(path.len());
        if end > 0 {
            out.push(("dbname".into(), percent_decode(&path[..end])));
        }
        s = &path[end..];
    }
    if let Some(mut params) = s.strip_prefix('?') {
        while !params.is_empty() {
            let eq = params
                .find('=')
                .ok_or_else(|| usage("an option without a value (key=value)"))?;
            let key = decoded_str(&params[..eq], "an option name")?;
            params = &params[eq + 1..];
            let end = params.find('&').unwrap_or(params.len());
            out.push((key, percent_decode(&params[..end])));
            params = params.get(end + 1..).unwrap_or("");
        }
    }
    Ok(out)
}

/// The options of a `key=value` connection string, as tokio-postgres reads
/// them (values may be quoted with `'`; `\` escapes the next character).
fn kv_pairs(s: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = it.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            if it.peek().is_some() {
                return Err(usage("an option without a name"));
            }
            return Ok(out);
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        if it.next() != Some('=') {
            return Err(usage(format!("option {key} has no value (key=value)")));
        }
        while it.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(it.next()),
                    Some(c) => value.push(c),
                    None => return Err(usage(format!("option {key}: unterminated quote"))),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(it.next());
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(usage(format!("option {key} has no value")));
            }
        }
        out.push((key, value.into_bytes()));
    }
}

fn quote(v: &str) -> String {
    let mut q = String::with_capacity(v.len() + 2);
    q.push('\'');
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('\'');
    q
}

/// Whether `url` carries a password of its own (not one from the
/// environment or a file); false for a string that does not parse.
pub fn has_password(url: &str) -> bool {
    Options::of(url).is_ok_and(|o| o.get("password").is_some())
}

/// The login name of the effective user, libpq's default user.
fn os_user() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    crate::base::account::user_name(unsafe { libc::geteuid() })
}

/// The options of a connection string, each given once.
struct Options(Vec<(String, Vec<u8>)>);

impl Options {
    /// Reads `url` (a `postgres://` or `postgresql://` URL, or `key=value`
    /// pairs); an option given twice is a usage error.
    fn of(url: &str) -> Result<Options> {
        let pairs = match url
            .strip_prefix("postgresql://")
            .or_else(|| url.strip_prefix("postgres://"))
        {
            Some(rest) => url_pairs(rest)?,
            None => kv_pairs(url)?,
        };
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(usage(format!(
                    "option {k} is given twice; give it once (which one would win is not obvious, e.g. sslmode=require&sslmode=disable)"
                )));
            }
        }
        Ok(Options(pairs))
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn text(&self, key: &str) -> Result<Option<String>> {
        self.get(key)
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| usage(format!("option {key} is not UTF-8")))
            })
            .transpose()
    }

    /// What tokio-postgres reads: every option but those handled here
    /// (password, TLS, password file).
    fn config(&self) -> Result<Config> {
        let mut kv = String::new();
        for (k, v) in &self.0 {
            if matches!(
                k.as_str(),
                "password" | "sslmode" | "sslrootcert" | "passfile"
            ) {
                continue;
            }
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(usage(format!("unknown option {k:?}")));
            }
            let v = String::from_utf8(v.clone())
                .map_err(|_| usage(format!("option {k} is not UTF-8")))?;
            kv.push_str(&format!("{k}={} ", quote(&v)));
        }
        kv.parse()
            .map_err(|e| usage(format!("not a PostgreSQL connection string: {e}")))
    }
}

/// Fills in what the connection string left out from libpq's variables:
/// password, hosts, ports, user, database, options, application name.
fn fill_from_env(
    config: &mut Config,
    password: Option<&[u8]>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if let Some(pw) = password {
        config.password(pw);
    } else if let Some(pw) = env("PGPASSWORD") {
        config.password(pw);
    }
    if config.get_hosts().is_empty() {
        if !config.get_hostaddrs().is_empty() {
            // The address names the server for TLS too.
            let addrs: Vec<String> = config
                .get_hostaddrs()
                .iter()
                .map(ToString::to_string)
                .collect();
            for a in addrs {
                config.host(&a);
            }
        } else if let Some(h) = env("PGHOST") {
            for h in h.split(',') {
                config.host(h);
            }
        }
    }
    if config.get_ports().is_empty()
        && let Some(p) = env("PGPORT")
    {
        for p in p.split(',') {
            let port = p
                .trim()
                .parse::<u16>()
                .map_err(|_| Error::usage(format!("PGPORT: {p:?} is not a port number")))?;
            config.port(port);
        }
    }
    if config.get_user().is_none()
        && let Some(u) = env("PGUSER").or_else(os_user)
    {
        config.user(&u);
    }
    if config.get_dbname().is_none()
        && let Some(d) = env("PGDATABASE")
    {
        config.dbname(&d);
    }
    if config.get_options().is_none()
        && let Some(o) = env("PGOPTIONS")
    {
        config.options(&o);
    }
    if config.get_application_name().is_none() {
        config.application_name(&env("PGAPPNAME").unwrap_or_else(|| "spoolmq".into()));
    }
    Ok(())
}

/// `connect_timeout` (or `PGCONNECT_TIMEOUT`) in seconds; 10 s if unset.
fn set_timeout(config: &mut Config, timeout: Option<String>) -> Result<()> {
    match timeout {
        None => {
            config.connect_timeout(Duration::from_secs(10));
        }
        Some(t) => {
            let secs = t.trim().parse::<i64>().map_err(|_| {
                Error::usage(format!(
                    "connect_timeout (or PGCONNECT_TIMEOUT): {t:?} is not a number of seconds"
                ))
            })?;
            // 0 or less: wait as long as the system does (libpq's rule).
            if secs > 0 {
                config.connect_timeout(Duration::from_secs(secs as u64));
            }
        }
    }
    Ok(())
}

/// `sslmode` (or `PGSSLMODE`; `prefer` if unset).
fn ssl_mode(pairs: &Options, env: &dyn Fn(&str) -> Option<String>) -> Result<Ssl> {
    let (mode, from) = match pairs.text("sslmode")? {
        Some(m) => (m, "sslmode"),
        None => match env("PGSSLMODE") {
            Some(m) => (m, "PGSSLMODE"),
            None => ("prefer".into(), "sslmode"),
        },
    };
    match mode.as_str() {
        "disable" => Ok(Ssl::Disable),
        "prefer" => Ok(Ssl::Prefer),
        "require" | "verify-ca" | "verify-full" => Ok(Ssl::Require),
        "allow" => Err(Error::usage(format!(
            "{from}=allow is not supported (it tries clear text first): use prefer, require or disable"
        ))),
        other => Err(Error::usage(format!(
            "{from}={other}: use disable, prefer, require, verify-ca or verify-full"
        ))),
    }
}

impl Target {
    /// Reads `url` (a `postgres://` or `postgresql://` URL, or `key=value`
    /// pairs) and fills in what it leaves out from `env` (libpq's variables;
    /// an empty value counts as unset). Usage errors (exit 2): an option
    /// given twice, an unknown option or value, a bad variable.
    pub fn parse(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        let pairs = Options::of(url)?;
        let mut config = pairs.config()?;
        fill_from_env(&mut config, pairs.get("password"), &env)?;
        let timeout = match pairs.text("connect_timeout")? {
            Some(t) => Some(t),
            None => env("PGCONNECT_TIMEOUT"),
        };
        set_timeout(&mut config, timeout)?;
        let ssl = ssl_mode(&pairs, &env)?;
        let root_cert = match pairs.text("sslrootcert")? {
            Some(r) => Some(r),
            None => env("PGSSLROOTCERT"),
        }
        .filter(|r| r != "system")
        .map(PathBuf::from);
        let passfile = match pairs.text("passfile")? {
            Some(p) => Some(PathBuf::from(p)),
            None => env("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass"))),
        };
        Ok(Target {
            config,
            ssl,
            root_cert,
            passfile,
        })
    }

    /// [`Target::parse`] with the process's environment.
    pub fn from_env(url: &str) -> Result<Target> {
        Target::parse(url, &|k| std::env::var(k).ok())
    }

    /// Where the connection goes, for messages: host, port and database,
    /// never the password.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let host = c
            .get_hosts()
            .first()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let db = c.get_dbname().or(c.get_user()).unwrap_or("postgres");
        format!("postgresql {host}:{port}/{db}")
    }

    /// The configuration to connect with and the connector that enforces
    /// the transport policy (see the module's doc). Reads the password file
    /// when no password was given.
    pub fn prepare(&self) -> Result<(Config, Connector)> {
        let mut config = self.config.clone();
        if config.get_password().is_none()
            && let Some(pw) = self.password_from_file()
        {
            config.password(pw);
        }
        let unix_only = !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, Host::Unix(_)));
        if unix_only {
            // No TLS on a Unix socket: tokio-postgres connects as it is.
            config.ssl_mode(postgres::config::SslMode::Disable);
        } else {
            // Hand the raw socket to the connector, which negotiates.
            config.ssl_mode(postgres::config::SslMode::Require);
            config.ssl_negotiation(postgres::config::SslNegotiation::Direct);
        }
        let place = self.describe();
        let tls = match self.ssl {
            Ssl::Disable => None,
            Ssl::Prefer => Some(unverified_tls()),
            Ssl::Require => Some(verified_tls(self.root_cert.as_deref())),
        }
        .transpose()
        .map_err(|e| Error::Runtime(format!("{place}: TLS: {e}")))?
        .map(MakeRustlsConnect::new);
        let connector = Connector {
            ssl: self.ssl,
            tls,
            guard: self.ssl == Ssl::Prefer && config.get_password().is_some(),
        };
        Ok((config, connector))
    }

    /// The password for this connection from the password file, libpq's
    /// way: lines `host:port:database:user:password`, `*` matching
    /// anything, `\` escaping `:` and `\`, `#` starting a comment. A file
    /// its group or others may read, or that is not a regular file, is
    /// ignored with a one-line warning (as libpq does); a missing one
    /// silently.
    fn password_from_file(&self) -> Option<Vec<u8>> {
        let path = self.passfile.as_deref()?;
        let text = read_private(path, "password file")?;
        let c = &self.config;
        let host = match c.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => "localhost".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
        let user = c.get_user().unwrap_or("");
        let db = c.get_dbname().unwrap_or(user);
        pgpass_lookup(&text, &[&host, &port, db, user]).map(String::into_bytes)
    }
}

/// Prints `line` as a warning, once per process for each distinct line.
fn warn_once(line: String) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !seen.contains(&line) {
        eprintln!("spoolmq: warning: {line}");
        seen.push(line);
    }
}

/// The text of a file only its owner may read (a password file): `None`,
/// with a warning, if it is not a regular file, if its group or others may
/// read or write it, or if it is too large; `None` silently if it is missing.
fn read_private(path: &Path, what: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn_once(format!("cannot read {what} {shown}: {e}; ignored"));
            return None;
        }
    };
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() {
        warn_once(format!("{what} {shown} is not a regular file; ignored"));
        return None;
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        warn_once(format!(
            "{what} {shown} has mode {mode:04o} (its group or others may read it); ignored: run chmod 600 {shown}"
        ));
        return None;
    }
    let mut bytes = Vec::new();
    if file.take(MAX_FILE + 1).read_to_end(&mut bytes).is_err() || bytes.len() as u64 > MAX_FILE {
        warn_once(format!(
            "{what} {shown} cannot be read or is over {MAX_FILE} bytes; ignored"
        ));
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The password of the first line of a password file matching `want`
/// (host, port, database, user).
fn pgpass_lookup(text: &str, want: &[&str; 4]) -> Option<String> {
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // Fields, unescaped, each with whether it was a bare `*`.
        let mut fields: Vec<(String, bool)> = Vec::new();
        let mut field = String::new();
        let mut raw_star = true;
        let mut raw_len = 0;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    field.extend(chars.next());
                    raw_star = false;
                    raw_len += 2;
                }
                ':' if fields.len() < 4 => {
                    fields.push((std::mem::take(&mut field), raw_star && raw_len == 1));
                    raw_star = true;
                    raw_len = 0;
                }
                // The password ends at an unescaped ':' (libpq's rule).
                ':' => break,
                c => {
                    raw_star &= c == '*';
                    raw_len += 1;
                    field.push(c);
                }
            }
        }
        if fields.len() < 4 {
            continue;
        }
        let matches = fields
            .iter()
            .zip(want)
            .all(|((f, star), w)| *star || f == w);
        if matches {
            return (!field.is_empty()).then_some(field);
        }
    }
    None
}

/// `sslmode=require`: rustls with ring's primitives, trusting the CAs in
/// `root_cert`, else the system's root certificates (the files
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` name, when set). rustls and not
/// OpenSSL: a statically linked OpenSSL made every spoolmq process, TLS or
/// not, pay about 0.3 ms at start-up for its constructors and 25,000
/// load-time relocations.
fn verified_tls(root_cert: Option<&Path>) -> std::result::Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let shown = path.display();
            let bytes = read_limited(path).map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&bytes) {
                let cert = cert.map_err(|e| format!("sslrootcert {shown}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "sslrootcert {shown} holds no certificate (PEM, BEGIN CERTIFICATE)"
                ));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(String::new, |e| format!(" ({e})"));
                return Err(format!(
                    "no trusted root certificates found on this system{why}: install ca-certificates, or set SSL_CERT_FILE or sslrootcert"
                ));
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn read_limited(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(io::Error::other(format!("over {MAX_FILE} bytes")));
    }
    Ok(bytes)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `sslmode=prefer`: TLS whatever certificate the server shows (libpq's
/// `prefer` and `require` do not check it either), with the handshake's
/// signatures still verified.
fn unverified_tls() -> std::result::Result<rustls::ClientConfig, String> {
    let provider = provider();
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;
type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// Negotiates the transport of each connection (see the module's doc).
#[derive(Clone)]
pub struct Connector {
    ssl: Ssl,
    tls: Option<MakeRustlsConnect>,
    /// Check the server's password request on connections whose server no
    /// certificate authenticated.
    guard: bool,
}

pub struct ConnectOne {
    ssl: Ssl,
    tls: Option<RustlsConnect>,
    guard: bool,
}

impl MakeTlsConnect<Socket> for Connector {
    type Stream = Conn;
    type TlsConnect = ConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<ConnectOne> {
        let tls = match &mut self.tls {
            Some(m) => Some(
                <MakeRustlsConnect as MakeTlsConnect<Socket>>::make_tls_connect(m, domain)
                    .map_err(io::Error::other)?,
            ),
            None => None,
        };
        Ok(ConnectOne {
            ssl: self.ssl,
            tls,
            guard: self.guard,
        })
    }
}

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl TlsConnect<Socket> for ConnectOne {
    type Stream = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn connect(self, mut socket: Socket) -> Self::Future {
        Box::pin(async move {
            let guard = self.guard.then(Guard::default);
            let Some(tls) = self.tls else {
                return Ok(Conn {
                    inner: Inner::Plain(socket),
                    guard: None,
                });
            };
            socket.write_all(&SSL_REQUEST).await?;
            // Exactly one byte: anything the server sent after it must go
            // through the TLS handshake, never be read as clear text.
            let mut answer = [0u8; 1];
            socket.read_exact(&mut answer).await?;
            match answer[0] {
                b'S' => {
                    let stream = tls.connect(socket).await?;
                    Ok(Conn {
                        inner: Inner::Tls(Box::new(stream)),
                        guard,
                    })
                }
                b'N' if self.ssl == Ssl::Prefer => Ok(Conn {
                    inner: Inner::Plain(socket),
                    guard,
                }),
                b'N' => Err(io::Error::other(
                    "the server does not offer TLS, and sslmode=require asks for it",
                )),
                other => Err(io::Error::other(format!(
                    "the server answered the TLS request with {other:#04x}, not S or N"
                ))),
            }
        })
    }
}

enum Inner {
    Plain(Socket),
    Tls(Box<RustlsStream>),
}

/// A connection's stream: clear text or TLS, with the password-request
/// check when there is one.
pub struct Conn {
    inner: Inner,
    guard: Option<Guard>,
}

impl TlsStream for Conn {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.inner {
            Inner::Plain(_) => ChannelBinding::none(),
            Inner::Tls(s) => s.channel_binding(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if let Some(Err(e)) = me.guard.as_ref().map(Guard::verdict) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let r = match &mut me.inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let (Poll::Ready(Ok(())), Some(g)) = (&r, me.guard.as_mut()) {
            g.feed(&buf.filled()[before..]);
            if let Err(e) = g.verdict() {
                // Nothing of what was read reaches the client.
                buf.set_filled(before);
                return Poll::Ready(Err(e));
            }
            if g.done {
                me.guard = None;
            }
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Reads the server's start-up messages (type byte, 4-byte length that
/// counts itself, body) until `AuthenticationOk`, and condemns the
/// connection on a request for a clear-text (3) or MD5 (5) password.
#[derive(Default)]
struct Guard {
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
    code: [u8; 4],
    code_len: usize,
    refused: Option<&'static str>,
    done: bool,
}

impl Guard {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.done || self.refused.is_some() {
                return;
            }
            if self.header_len < 5 {
                self.header[self.header_len] = b;
                self.header_len += 1;
                if self.header_len == 5 {
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]);
                    self.body_left = (len as usize).saturating_sub(4);
                    self.code_len = 0;
                    if self.body_left == 0 {
                        self.header_len = 0;
                    }
                }
                continue;
            }
            if self.header[0] == b'R' && self.code_len < 4 {
                self.code[self.code_len] = b;
                self.code_len += 1;
                if self.code_len == 4 {
                    match u32::from_be_bytes(self.code) {
                        0 => self.done = true,
                        3 => self.refused = Some("in clear text"),
                        5 => self.refused = Some("as an MD5 hash"),
                        _ => {}
                    }
                }
            }
            self.body_left -= 1;
            if self.body_left == 0 {
                self.header_len = 0;
            }
        }
    }

    fn verdict(&self) -> io::Result<()> {
        match self.refused {
            None => Ok(()),
            Some(how) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the server asks for the password {how}, and nothing proves it is the server (no TLS with a checked certificate); refused, the password was not sent. Use sslmode=require (with sslrootcert=CA.pem for a private CA), or sslmode=disable to allow it in clear text"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn parse(url: &str, vars: &[(&str, &str)]) -> Result<Target> {
        Target::parse(url, &env(vars))
    }

    #[test]
    fn a_url_or_a_string_that_names_an_option_twice_is_a_usage_error() {
        for url in [
            "postgresql://h/db?sslmode=require&sslmode=disable",
            "postgresql://u@h/db?user=v",
            "postgresql://h/db?host=other",
            "host=h sslmode=require sslmode=disable",
            "host=h dbname=a dbname=b",
        ] {
            let e = parse(url, &[]).err().unwrap_or_else(|| panic!("{url}"));
            assert!(matches!(e, Error::Usage(_)), "{url}: {e}");
            assert!(e.to_string().contains("twice"), "{url}: {e}");
        }
        assert!(parse("postgresql://h/db?sslmode=require", &[]).is_ok());
    }

    #[test]
    fn the_url_wins_over_the_environment_which_fills_the_rest() {
        let vars = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "app"),
            ("PGCONNECT_TIMEOUT", "3"),
        ];
        let t = parse("postgresql://", &vars).unwrap();
        assert_eq!(t.describe(), "postgresql envhost:6000/envdb");
        assert_eq!(t.config.get_user(), Some("envuser"));
        assert_eq!(t.config.get_password(), Some(&b"envpw"[..]));
        assert_eq!(t.config.get_application_name(), Some("app"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(t.ssl, Ssl::Require);
        let t = parse(
            "postgresql://u:p%40ss@h:7/d?sslmode=disable&application_name=x",
            &vars,
        )
        .unwrap();
        assert_eq!(t.describe(), "postgresql h:7/d");
        assert_eq!(t.config.get_user(), Some("u"));
        assert_eq!(t.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(t.ssl, Ssl::Disable);
        // A URL host without a port takes PGPORT.
        assert_eq!(
            parse("postgresql://h/d", &vars).unwrap().describe(),
            "postgresql h:6000/d"
        );
        // key=value strings, quoted values.
        let t = parse("host=h password='it''s' user=u", &[]);
        assert!(t.is_err(), "'it' then 's' is not one value");
        let t = parse(r"host=h password='it\'s' user=u", &[]).unwrap();
        assert_eq!(t.config.get_password(), Some(&b"it's"[..]));
        assert!(has_password(r"host=h password='it\'s'"));
        assert!(has_password("postgres://u:pw@h/db"));
        assert!(!has_password("postgres://u@h/db"));
        // Defaults.
        let t = parse("postgresql://h/d", &[]).unwrap();
        assert_eq!(t.ssl, Ssl::Prefer);
        assert_eq!(t.config.get_application_name(), Some("spoolmq"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
    }

    #[test]
    fn bad_modes_and_variables_are_usage_errors() {
        for (url, vars) in [
            ("postgresql://h/d?sslmode=allow", vec![]),
            ("postgresql://h/d?sslmode=maybe", vec![]),
            ("postgresql://h/d", vec![("PGSSLMODE", "nope")]),
            ("postgresql:///d", vec![("PGPORT", "http")]),
            ("postgresql://h/d", vec![("PGCONNECT_TIMEOUT", "soon")]),
            ("postgresql://h/d?nosuchoption=1", vec![]),
        ] {
            let e = parse(url, &vars).err().unwrap_or_else(|| panic!("{url}"));
            assert!(matches!(e, Error::Usage(_)), "{url}: {e}");
        }
        for m in ["verify-ca", "verify-full", "require"] {
            let t = parse(&format!("postgresql://h/d?sslmode={m}"), &[]).unwrap();
            assert_eq!(t.ssl, Ssl::Require);
        }
    }

    #[test]
    fn the_password_file_is_read_as_libpq_reads_it() {
        let file = "# comment\n\
                    other:5432:*:u:wrong\n\
                    h:5432:d:u\\:x:escaped\n\
                    h:*:d:u:pw\\:with\\\\colon:ignored\n\
                    *:*:*:*:fallback\n";
        let look = |w: [&str; 4]| pgpass_lookup(file, &w);
        assert_eq!(
            look(["h", "5432", "d", "u"]).as_deref(),
            Some("pw:with\\colon")
        );
        assert_eq!(look(["h", "5432", "d", "u:x"]).as_deref(), Some("escaped"));
        assert_eq!(
            look(["h", "1", "d", "u"]).as_deref(),
            Some("pw:with\\colon")
        );
        assert_eq!(look(["z", "1", "e", "v"]).as_deref(), Some("fallback"));
        // A `\*` is a star, not a wildcard.
        assert_eq!(pgpass_lookup("\\*:*:*:*:p\n", &["h", "1", "d", "u"]), None);
        assert_eq!(
            pgpass_lookup("\\*:*:*:*:p\n", &["*", "1", "d", "u"]).as_deref(),
            Some("p")
        );
        assert_eq!(pgpass_lookup("h:1:d\n", &["h", "1", "d", "u"]), None);
    }

    #[test]
    fn a_password_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pgpass");
        std::fs::write(&p, "*:*:*:*:secret\n").unwrap();
        let url = format!("postgresql://h/d?passfile={}", p.display());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (c, _) = parse(&url, &[]).unwrap().prepare().unwrap();
        assert_eq!(c.get_password(), Some(&b"secret"[..]));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (c, _) = parse(&url, &[]).unwrap().prepare().unwrap();
        assert_eq!(c.get_password(), None);
        // PGPASSWORD comes first.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (c, _) = parse(&url, &[("PGPASSWORD", "env")])
            .unwrap()
            .prepare()
            .unwrap();
        assert_eq!(c.get_password(), Some(&b"env"[..]));
    }

    #[test]
    fn the_guard_refuses_clear_text_and_md5_requests_split_anywhere() {
        // ParameterStatus-like noise, then an auth request.
        let msg = |code: u32, extra: &[u8]| {
            let mut m = vec![b'R'];
            m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
            m.extend_from_slice(&code.to_be_bytes());
            m.extend_from_slice(extra);
            m
        };
        for (code, extra, refused) in [
            (3u32, &b""[..], true),
            (5, &b"salt"[..], true),
            (10, &b"SCRAM-SHA-256\0\0"[..], false),
            (0, &b""[..], false),
        ] {
            let mut stream = vec![b'v', 0, 0, 0, 6, 1, 2];
            stream.extend(msg(code, extra));
            for split in 0..stream.len() {
                let mut g = Guard::default();
                g.feed(&stream[..split]);
                g.feed(&stream[split..]);
                assert_eq!(g.verdict().is_err(), refused, "code {code} split {split}");
            }
        }
        // After AuthenticationOk nothing is inspected.
        let mut g = Guard::default();
        g.feed(&msg(0, b""));
        g.feed(&msg(3, b""));
        assert!(g.verdict().is_ok() && g.done);
    }
}
