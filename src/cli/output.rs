//! What commands print: JSON lines (the contract) and plain text.
//!
//! Plain message lines are tab-separated with the body escaped, so one
//! message is always one line: `\\`, `\n`, `\t`, `\r`, and `\xHH` for other
//! control bytes and bytes that are not valid UTF-8.

use crate::model::failure::{Failure, How};
use crate::queue::{Delivery, Inspected, Peeked, Stats};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::io::{self, Write};

/// Bytes the streaming encoders below gather before each write: a body is
/// escaped or encoded straight into the output a piece at a time, never
/// into a whole copy (a 500 MB body of NUL bytes once made `pop` hold 4.6
/// GB and take 38 s).
const OUT_CHUNK: usize = 64 * 1024;

/// Escapes a body for a plain, one-line display.
#[cfg(test)]
pub fn escape(body: &[u8]) -> String {
    let mut out = Vec::with_capacity(body.len());
    // Writing to a Vec cannot fail, and what is written is UTF-8.
    let _ = write_escaped(&mut out, body);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How each byte is written: up to `N` bytes, and how many of them count.
type Table<const N: usize> = [([u8; N], u8); 256];

/// The plain form of each byte of valid UTF-8: `\\\\`, `\\n`, `\\t`, `\\r`,
/// `\\xHH` for the other ASCII control characters, anything else (bytes of
/// multi-byte characters too) as it is.
const PLAIN: Table<4> = {
    let mut t = [([0u8; 4], 1u8); 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'\\' => ([b'\\', b'\\', 0, 0], 2),
            b'\n' => ([b'\\', b'n', 0, 0], 2),
            b'\t' => ([b'\\', b't', 0, 0], 2),
            b'\r' => ([b'\\', b'r', 0, 0], 2),
            0..0x20 | 0x7f => (
                [b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]],
                4,
            ),
            _ => ([b, 0, 0, 0], 1),
        };
        i += 1;
    }
    t
};

/// Each byte of a JSON string as serde_json writes it (compact form):
/// `\\"`, `\\\\`, `\\b \\t \\n \\f \\r`, `\\u00hh` for the other control
/// characters, anything else as it is.
const JSON: Table<8> = {
    let mut t = [([0u8; 8], 1u8); 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = match b {
            b'"' => ([b'\\', b'"', 0, 0, 0, 0, 0, 0], 2),
            b'\\' => ([b'\\', b'\\', 0, 0, 0, 0, 0, 0], 2),
            0x08 => ([b'\\', b'b', 0, 0, 0, 0, 0, 0], 2),
            b'\t' => ([b'\\', b't', 0, 0, 0, 0, 0, 0], 2),
            b'\n' => ([b'\\', b'n', 0, 0, 0, 0, 0, 0], 2),
            0x0c => ([b'\\', b'f', 0, 0, 0, 0, 0, 0], 2),
            b'\r' => ([b'\\', b'r', 0, 0, 0, 0, 0, 0], 2),
            0..0x20 => (
                [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                    0,
                    0,
                ],
                6,
            ),
            _ => ([b, 0, 0, 0, 0, 0, 0, 0], 1),
        };
        i += 1;
    }
    t
};

/// Which bytes `table` keeps as they are (the runs [`write_table`] copies
/// whole), looked up once per byte instead of comparing the table's entry.
const fn kept<const N: usize>(table: &Table<N>) -> [bool; 256] {
    let mut k = [false; 256];
    let mut i = 0;
    while i < 256 {
        k[i] = table[i].1 == 1 && table[i].0[0] == i as u8;
        i += 1;
    }
    k
}

/// The bytes at or above 0x20 that `kept` does not keep: two in each
/// table here (a table with another number fails to compile), which
/// [`Escapes::run`] tests a word at a time.
const fn also(kept: &[bool; 256]) -> [u8; 2] {
    let mut also = [0u8; 2];
    let (mut n, mut c) = (0, 0x20);
    while c < 256 {
        if !kept[c] {
            assert!(n < 2, "more than two escaped bytes above 0x1f");
            also[n] = c as u8;
            n += 1;
        }
        c += 1;
    }
    assert!(n == 2, "fewer than two escaped bytes above 0x1f");
    also
}

/// How a table escapes: its forms, the bytes it keeps, and the two bytes
/// at or above 0x20 it does not keep (bytes below 0x20 are tested apart).
struct Escapes<const N: usize> {
    table: &'static Table<N>,
    kept: [bool; 256],
    also: [u8; 2],
}

const PLAIN_ESC: Escapes<4> = Escapes {
    table: &PLAIN,
    kept: kept(&PLAIN),
    also: also(&kept(&PLAIN)),
};
const JSON_ESC: Escapes<8> = Escapes {
    table: &JSON,
    kept: kept(&JSON),
    also: also(&kept(&JSON)),
};

impl<const N: usize> Escapes<N> {
    /// How many bytes at the start of `b` are kept: eight at a time while
    /// none of them is below 0x20 or one of `also` (a word test that is
    /// never wrong when it says none is: an escaped byte is rare, and a
    /// byte at a time was a twelfth of `pop --json`), then byte by byte.
    fn run(&self, b: &[u8]) -> usize {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let [x, y] = self.also.map(|c| ONES * u64::from(c));
        let mut at = 0;
        for word in b.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let v = u64::from_ne_bytes(w);
            if (v.wrapping_sub(ONES * 0x20) & !v & HIGH) | zero(v ^ x) | zero(v ^ y) != 0 {
                break;
            }
            at += 8;
        }
        at + b[at..]
            .iter()
            .position(|&c| !self.kept[usize::from(c)])
            .unwrap_or(b.len() - at)
    }
}

#[cfg(test)]
#[test]
fn a_word_at_a_time_finds_the_first_escaped_byte_as_a_byte_at_a_time_does() {
    let mut b = vec![b'x'; 40];
    // What `run` assumes of each table: it escapes exactly the bytes below
    // 0x20 and its two others.
    assert_eq!(PLAIN_ESC.also, [b'\\', 0x7f]);
    assert_eq!(JSON_ESC.also, [b'"', b'\\']);
    for (kept, also) in [
        (&PLAIN_ESC.kept, PLAIN_ESC.also),
        (&JSON_ESC.kept, JSON_ESC.also),
    ] {
        for c in 0..=255u8 {
            assert_eq!(
                kept[usize::from(c)],
                c >= 0x20 && !also.contains(&c),
                "{c:#x}"
            );
        }
    }
    for c in 0..=255u8 {
        for at in [0, 3, 7, 8, 9, 17, 39] {
            b[at] = c;
            let slow = |e: &[bool; 256]| {
                b.iter()
                    .position(|&c| !e[usize::from(c)])
                    .unwrap_or(b.len())
            };
            assert_eq!(
                PLAIN_ESC.run(&b),
                slow(&PLAIN_ESC.kept),
                "plain {c:#x} at {at}"
            );
            assert_eq!(
                JSON_ESC.run(&b),
                slow(&JSON_ESC.kept),
                "json {c:#x} at {at}"
            );
            b[at] = b'x';
        }
    }
}

/// Writes each byte of `bytes` as `esc` says, gathering the output in
/// `buf` and writing it out every [`OUT_CHUNK`] bytes. Runs of bytes the
/// table keeps as they are are copied whole: looking each byte's form up
/// and copying it was a fifth of a 100,000-message `pop --json`. Bytes
/// that are all kept, with nothing gathered before them, are written
/// straight from `bytes`.
fn write_table<W: Write + ?Sized, const N: usize>(
    out: &mut W,
    buf: &mut Vec<u8>,
    bytes: &[u8],
    esc: &Escapes<N>,
) -> io::Result<()> {
    let (table, kept) = (esc.table, &esc.kept);
    let mut rest = bytes;
    while !rest.is_empty() {
        if buf.len() >= OUT_CHUNK {
            out.write_all(buf)?;
            buf.clear();
        }
        let room = (OUT_CHUNK - buf.len()).min(rest.len());
        let run = esc.run(&rest[..room]);
        if buf.is_empty() && run == rest.len() {
            return out.write_all(rest);
        }
        buf.extend_from_slice(&rest[..run]);
        rest = &rest[run..];
        if let Some(&b) = rest.first().filter(|&&b| !kept[usize::from(b)]) {
            let (enc, len) = &table[usize::from(b)];
            buf.extend_from_slice(&enc[..usize::from(*len)]);
            rest = &rest[1..];
        }
    }
    Ok(())
}

/// Writes `escape(body)` to `out`, a piece at a time: bytes of valid
/// UTF-8 as [`PLAIN`] says, bytes that are not valid UTF-8 as `\\xHH`.
pub fn write_escaped<W: Write + ?Sized>(out: &mut W, body: &[u8]) -> io::Result<()> {
    let mut buf = Vec::new();
    for chunk in body.utf8_chunks() {
        write_table(out, &mut buf, chunk.valid().as_bytes(), &PLAIN_ESC)?;
        for &b in chunk.invalid() {
            buf.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
        // A body of bytes that are all invalid has no valid run to flush it.
        if buf.len() >= OUT_CHUNK {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// Writes `n` in decimal, as JSON and Display write it.
fn write_uint<W: Write + ?Sized>(out: &mut W, mut n: u64) -> io::Result<()> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.write_all(&digits[i..])
}

/// Writes `s` as a JSON string, byte for byte as serde_json would, but a
/// piece at a time (serde_json's writer makes one write per escape).
fn write_json_str<W: Write + ?Sized>(out: &mut W, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut buf = Vec::new();
    write_table(out, &mut buf, s.as_bytes(), &JSON_ESC)?;
    out.write_all(&buf)?;
    out.write_all(b"\"")
}

/// Writes the body as a JSON member: `"body":"..."`, or
/// `"body_base64":"..."` when it is not UTF-8, a piece at a time.
fn write_body_member<W: Write + ?Sized>(out: &mut W, body: &[u8]) -> io::Result<()> {
    match std::str::from_utf8(body) {
        Ok(s) => {
            out.write_all(b"\"body\":")?;
            write_json_str(out, s)?;
        }
        Err(_) => {
            use base64::engine::general_purpose::STANDARD;
            out.write_all(b"\"body_base64\":\"")?;
            // A multiple of 3 bytes: no padding but at the very end.
            const IN: usize = OUT_CHUNK / 4 * 3;
            let mut buf = vec![0u8; body.len().min(IN).div_ceil(3) * 4 + 4];
            for piece in body.chunks(IN) {
                let n = STANDARD
                    .encode_slice(piece, &mut buf)
                    .map_err(|e| io::Error::other(format!("base64: {e}")))?;
                out.write_all(&buf[..n])?;
            }
            out.write_all(b"\"")?;
        }
    }
    Ok(())
}

/// Writes `"key":value` (after a comma unless it is the first member).
fn write_member<W: Write + ?Sized>(
    out: &mut W,
    first: bool,
    key: &str,
    value: &impl serde::Serialize,
) -> io::Result<()> {
    if !first {
        out.write_all(b",")?;
    }
    serde_json::to_writer(&mut *out, key)?;
    out.write_all(b":")?;
    serde_json::to_writer(&mut *out, value)?;
    Ok(())
}

/// Writes one JSON object line: `members` in order, then the body.
fn write_object_line<W: Write + ?Sized>(
    out: &mut W,
    members: &[(&str, Value)],
    body: &[u8],
) -> io::Result<()> {
    out.write_all(b"{")?;
    for (i, (k, v)) in members.iter().enumerate() {
        write_member(out, i == 0, k, v)?;
    }
    if !members.is_empty() {
        out.write_all(b",")?;
    }
    write_body_member(out, body)?;
    out.write_all(b"}\n")
}

#[cfg(test)]
/// A line written by one of the `write_*` functions, as a string without its newline.
fn line_of(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut v = Vec::new();
    // Writing to a Vec cannot fail; what the encoders write is UTF-8.
    let _ = write(&mut v);
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes a delivery as a JSON line (the contract's `pop --json`), streaming its body.
pub fn write_delivery_json<W: Write + ?Sized>(out: &mut W, d: &Delivery) -> io::Result<()> {
    // The members written straight, as write_object_line would write
    // them: a `json!` value per member was a tenth of `pop --json`.
    out.write_all(b"{\"id\":")?;
    write_json_str(out, d.id())?;
    out.write_all(b",\"receipt\":")?;
    write_json_str(out, &d.receipt)?;
    out.write_all(b",\"attempt\":")?;
    write_uint(out, u64::from(d.attempt))?;
    out.write_all(b",")?;
    write_body_member(out, &d.body)?;
    out.write_all(b"}\n")
}
#[cfg(test)]
pub fn delivery_json(d: &Delivery) -> String {
    line_of(|v| write_delivery_json(v, d))
}

/// Writes a delivery as a plain line, streaming its escaped body.
pub fn write_delivery_plain<W: Write + ?Sized>(out: &mut W, d: &Delivery) -> io::Result<()> {
    write!(out, "{}\t{}\t{}\t", d.id(), d.receipt, d.attempt)?;
    write_escaped(out, &d.body)?;
    out.write_all(b"\n")
}

#[cfg(test)]
pub fn delivery_plain(d: &Delivery) -> String {
    line_of(|v| write_delivery_plain(v, d))
}

/// Writes a peeked message as a JSON line, streaming its body.
pub fn write_peeked_json<W: Write + ?Sized>(out: &mut W, p: &Peeked) -> io::Result<()> {
    let members = [("id", json!(p.id)), ("attempt", json!(p.attempt))];
    write_object_line(out, &members, &p.body)
}

#[cfg(test)]
pub fn peeked_json(p: &Peeked) -> String {
    line_of(|v| write_peeked_json(v, p))
}

/// Writes a peeked message as a plain line, streaming its escaped body.
pub fn write_peeked_plain<W: Write + ?Sized>(out: &mut W, p: &Peeked) -> io::Result<()> {
    write!(out, "{}\t{}\t", p.id, p.attempt)?;
    write_escaped(out, &p.body)?;
    out.write_all(b"\n")
}

#[cfg(test)]
pub fn peeked_plain(p: &Peeked) -> String {
    line_of(|v| write_peeked_plain(v, p))
}

/// A failure as JSON (`export`, `peek --dead --json`, `inspect --json`):
/// `{"at_ms", "attempt", "how" (the phrase), "kind", then by kind "status"
/// (exit), "signal" (its number; "signal_name" too when known), "after_ms"
/// (timeout) or "text" (not_started, reason), and "stderr" (or
/// "stderr_base64" when it is not UTF-8)}`.
pub fn failure_value(f: &Failure) -> Value {
    let (kind, code, text) = f.how.parts();
    let mut m = Map::new();
    m.insert("at_ms".into(), json!(f.at_ms));
    m.insert("attempt".into(), json!(f.attempt));
    m.insert("how".into(), json!(f.how.to_string()));
    m.insert("kind".into(), json!(How::kind_name(kind)));
    match &f.how {
        How::Exit(c) => {
            m.insert("status".into(), json!(c));
        }
        How::Signal(sig) => {
            m.insert("signal".into(), json!(sig));
            if let Some(n) = crate::model::failure::signal_name(*sig) {
                m.insert("signal_name".into(), json!(n));
            }
        }
        How::TimedOut { after_ms } => {
            m.insert("after_ms".into(), json!(after_ms));
        }
        How::NotStarted(_) | How::Reason(_) => {
            m.insert("text".into(), json!(text));
        }
    }
    let _ = code;
    match std::str::from_utf8(&f.stderr) {
        Ok(t) => m.insert("stderr".into(), json!(t)),
        Err(_) => m.insert(
            "stderr_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&f.stderr)),
        ),
    };
    Value::Object(m)
}

/// Reads what [`failure_value`] wrote.
pub fn parse_failure(v: &Value) -> Result<Failure, String> {
    let num = |key: &str| -> Result<u64, String> {
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("last_failure.{key}: missing or not a whole number"))
    };
    let int = |key: &str| -> Result<i32, String> {
        v.get(key)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("last_failure.{key}: missing or not a 32-bit number"))
    };
    let text = || -> Result<String, String> {
        v.get("text")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "last_failure.text: missing or not a string".to_string())
    };
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    let how = match kind {
        "exit" => How::Exit(int("status")?),
        "signal" => How::Signal(int("signal")?),
        "timeout" => How::TimedOut {
            after_ms: num("after_ms")?,
        },
        "not_started" => How::NotStarted(text()?),
        "reason" => How::Reason(text()?),
        k => return Err(format!("last_failure.kind: unknown kind {k:?}")),
    };
    let stderr = match (v.get("stderr"), v.get("stderr_base64")) {
        (Some(Value::String(t)), _) => t.as_bytes().to_vec(),
        (_, Some(Value::String(b))) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("last_failure.stderr_base64: {e}"))?,
        _ => Vec::new(),
    };
    let attempt = u32::try_from(num("attempt")?)
        .map_err(|_| "last_failure.attempt: larger than 4294967295".to_string())?;
    Ok(Failure {
        at_ms: num("at_ms")?,
        attempt,
        how,
        stderr,
    }
    .kept(attempt))
}

/// Writes a dead letter (`peek --dead`) as a JSON line: `id`, `attempt`
/// (deliveries it had), `last_failure` (when known), then the body.
pub fn write_dead_json<W: Write + ?Sized>(out: &mut W, p: &Peeked) -> io::Result<()> {
    let mut members = vec![("id", json!(p.id)), ("attempt", json!(p.attempt))];
    if let Some(f) = &p.last_failure {
        members.push(("last_failure", failure_value(f)));
    }
    write_object_line(out, &members, &p.body)
}

/// Writes a dead letter as a plain line: id, attempts, the last failure's
/// phrase (`-` when none is known), then the escaped body.
pub fn write_dead_plain<W: Write + ?Sized>(out: &mut W, p: &Peeked) -> io::Result<()> {
    let how = p
        .last_failure
        .as_ref()
        .map_or_else(|| "-".to_string(), |f| f.how.to_string());
    write!(out, "{}\t{}\t", p.id, p.attempt)?;
    write_escaped(out, how.as_bytes())?;
    out.write_all(b"\t")?;
    write_escaped(out, &p.body)?;
    out.write_all(b"\n")
}

/// `inspect --json`: one object.
pub fn inspected_json(m: &Inspected) -> String {
    let mut o = Map::new();
    o.insert("id".into(), json!(m.id));
    o.insert("state".into(), json!(m.state));
    o.insert("attempts".into(), json!(m.attempts));
    o.insert("pushed_at_ms".into(), json!(m.pushed_at_ms));
    if let Some(t) = m.ready_at_ms {
        o.insert("ready_at_ms".into(), json!(t));
    }
    if let Some(t) = m.lease_until_ms {
        o.insert("lease_until_ms".into(), json!(t));
    }
    if let Some(t) = m.dead_at_ms {
        o.insert("dead_at_ms".into(), json!(t));
    }
    if let Some(t) = m.expires_at_ms {
        o.insert("expires_at_ms".into(), json!(t));
    }
    if m.expired {
        o.insert("expired".into(), json!(true));
    }
    if let Some((key, window)) = m.unique {
        o.insert("key_hash".into(), json!(key.hex()));
        o.insert("unique_for_ms".into(), json!(window));
    }
    o.insert("priority".into(), json!(m.priority));
    if let Some(g) = m.group {
        o.insert("group_hash".into(), json!(g.hex()));
    }
    o.insert("bytes".into(), json!(m.len));
    o.insert(
        "last_failure".into(),
        m.last_failure.as_ref().map_or(Value::Null, failure_value),
    );
    Value::Object(o).to_string()
}

/// `inspect`: one `name: value` line per field; the stderr tail last, as
/// it was written (escaped, one line).
pub fn inspected_plain(m: &Inspected, now_ms: u64) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<14}{v}\n"));
    line("id:", m.id.clone());
    line("state:", m.state.clone());
    line("attempts:", m.attempts.to_string());
    line(
        "pushed:",
        format!(
            "{} ({} ago)",
            m.pushed_at_ms,
            human_age(now_ms.saturating_sub(m.pushed_at_ms))
        ),
    );
    if let Some(t) = m.ready_at_ms {
        line(
            "ready at:",
            format!("{t} (in {})", human_age(t.saturating_sub(now_ms))),
        );
    }
    if let Some(t) = m.lease_until_ms {
        line(
            "lease until:",
            format!("{t} (in {})", human_age(t.saturating_sub(now_ms))),
        );
    }
    if let Some(t) = m.dead_at_ms {
        let why = if m.expired { ", expired" } else { "" };
        line(
            "dead since:",
            format!("{t} ({} ago{why})", human_age(now_ms.saturating_sub(t))),
        );
    }
    if let Some(t) = m.expires_at_ms.filter(|_| !m.expired) {
        let when = if t > now_ms {
            format!("in {}", human_age(t - now_ms))
        } else {
            format!("{} ago", human_age(now_ms - t))
        };
        line("expires:", format!("{t} ({when})"));
    }
    if let Some((key, window)) = m.unique {
        let held = if window > 0 {
            format!(", held {} after its ack", human_age(window))
        } else {
            String::new()
        };
        line("key hash:", format!("{}{held}", key.hex()));
    }
    line("priority:", m.priority.to_string());
    if let Some(g) = m.group {
        line("group hash:", g.hex());
    }
    line("bytes:", m.len.to_string());
    match &m.last_failure {
        None => line("last failure:", "none".into()),
        Some(f) => {
            line(
                "last failure:",
                format!(
                    "{} (attempt {}, {} ago)",
                    f.how,
                    f.attempt,
                    human_age(now_ms.saturating_sub(f.at_ms))
                ),
            );
            let mut e = Vec::new();
            let _ = write_escaped(&mut e, &f.stderr);
            line("stderr tail:", String::from_utf8_lossy(&e).into_owned());
        }
    }
    s
}

/// Writes an exported message as a JSON line (what `import` reads), streaming its body.
pub fn write_exported_json<W: Write + ?Sized>(
    out: &mut W,
    m: &crate::queue::Exported,
) -> io::Result<()> {
    let mut members = vec![
        ("id", json!(m.id)),
        ("state", json!(m.state)),
        ("attempt", json!(m.attempts)),
        ("pushed_at_ms", json!(m.pushed_at_ms)),
    ];
    if let Some(t) = m.ready_at_ms {
        members.push(("ready_at_ms", json!(t)));
    }
    if let Some(t) = m.dead_at_ms {
        members.push(("dead_at_ms", json!(t)));
    }
    if let Some((ttl, expires)) = m.ttl {
        members.push(("ttl_ms", json!(ttl)));
        members.push(("expires_at_ms", json!(expires)));
    }
    if m.expired {
        members.push(("expired", json!(true)));
    }
    if let Some((key, window)) = m.unique {
        members.push(("key_hash", json!(key.hex())));
        members.push(("unique_for_ms", json!(window)));
    }
    if m.priority > 0 {
        members.push(("priority", json!(m.priority)));
    }
    if let Some(g) = m.group {
        members.push(("group_hash", json!(g.hex())));
    }
    if let Some(f) = &m.last_failure {
        members.push(("last_failure", failure_value(f)));
    }
    write_object_line(out, &members, &m.body)
}

#[cfg(test)]
pub fn exported_json(m: &crate::queue::Exported) -> String {
    line_of(|v| write_exported_json(v, m))
}

/// Parses a line written by [`write_exported_json`]. Its numbers must be what
/// spoolmq can keep: `attempt` a whole number up to 4294967295, the times
/// whole milliseconds since 1970 no further than `--delay`'s 100 years past
/// `now_ms`; a `delayed` line needs its `ready_at_ms`. Anything else is an
/// error (never clamped, never taken as "ready at once").
pub fn parse_exported(line: &str, now_ms: u64) -> Result<crate::queue::Exported, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let body = match (v.get("body"), v.get("body_base64")) {
        (Some(Value::String(b)), _) => b.as_bytes().to_vec(),
        (_, Some(Value::String(b))) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("body_base64: {e}"))?,
        _ => return Err("no body or body_base64".into()),
    };
    let state = v
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("ready")
        .to_string();
    if !["ready", "delayed", "leased", "dead"].contains(&state.as_str()) {
        return Err(format!("unknown state {state:?}"));
    }
    // A field that is present must hold a whole number from 0 to `max`.
    let whole = |key: &str, max: u64, rule: &str| -> Result<Option<u64>, String> {
        match v.get(key) {
            None => Ok(None),
            Some(n) => match n.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(format!("{key}: {n} is not {rule}")),
            },
        }
    };
    let latest = now_ms.saturating_add(crate::model::input::MAX_DURATION_MS);
    let time_rule = "whole milliseconds since 1970, at most 100 years from now";
    let attempt_key = if v.get("attempt").is_some() {
        "attempt"
    } else {
        "attempts"
    };
    let attempts = whole(
        attempt_key,
        u64::from(u32::MAX),
        "a whole number from 0 to 4294967295",
    )?
    .unwrap_or(0) as u32;
    let pushed_at_ms = whole("pushed_at_ms", latest, time_rule)?.unwrap_or(0);
    let ready_at_ms = whole("ready_at_ms", latest, time_rule)?;
    if state == "delayed" && ready_at_ms.is_none() {
        return Err("a delayed message needs ready_at_ms (when it becomes ready)".into());
    }
    // Exports made before dead letters kept their time have none: unknown.
    let dead_at_ms = whole("dead_at_ms", latest, time_rule)?.filter(|_| state == "dead");
    // A TTL in whole seconds (rounded up, as `push --ttl`); it ends at
    // `expires_at_ms`, or counted from the push if that is missing.
    let ttl_rule = "a TTL of whole milliseconds from 1 to 4294967295000";
    let ttl = match whole("ttl_ms", crate::model::ttl::MAX_TTL_MS, ttl_rule)? {
        None | Some(0) => None,
        Some(t) => {
            use crate::model::ttl;
            let t = ttl::whole_second(t);
            let rule = "whole milliseconds since 1970, before 2106";
            let expires = whole("expires_at_ms", ttl::MAX_EXPIRY_MS, rule)?
                .map_or_else(|| ttl::expiry(pushed_at_ms, t), ttl::whole_second);
            Some((t, expires.max(1000)))
        }
    };
    let expired = match v.get("expired") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) if state == "dead" => true,
        Some(Value::Bool(true)) => return Err("expired: only a dead letter is expired".into()),
        Some(x) => return Err(format!("expired: {x} is not true or false")),
    };
    // A unique key, as its hash (what every store keeps), and its window.
    let unique = match v.get("key_hash") {
        None | Some(Value::Null) => None,
        Some(h) => {
            let key = h
                .as_str()
                .and_then(crate::model::unique::UniqueKey::from_hex)
                .ok_or_else(|| format!("key_hash: {h} is not 32 hex digits"))?;
            let max = crate::model::unique::MAX_UNIQUE_FOR_MS;
            let rule = "whole milliseconds up to 4294967295000";
            let window = whole("unique_for_ms", max, rule)?.unwrap_or(0);
            Some((key, crate::model::ttl::whole_second(window)))
        }
    };
    // Exports made before priorities, and plain messages, have none: 0.
    let max = u64::from(crate::store::MAX_PRIORITY);
    let priority = whole("priority", max, "a whole number from 0 to 9")?.unwrap_or(0) as u8;
    // A group, as its key (what every store keeps); a grouped message has
    // no priority.
    let group = match v.get("group_hash") {
        None | Some(Value::Null) => None,
        Some(h) => Some(
            h.as_str()
                .and_then(crate::model::group::GroupKey::from_hex)
                .ok_or_else(|| format!("group_hash: {h} is not 16 hex digits naming a group"))?,
        ),
    };
    if group.is_some() && priority > 0 {
        return Err("a message in a group has no priority".into());
    }
    // Exports made before failures were kept have no such field.
    let last_failure = match v.get("last_failure") {
        None | Some(Value::Null) => None,
        Some(f) => Some(parse_failure(f)?),
    };
    Ok(crate::queue::Exported {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        state,
        attempts,
        pushed_at_ms,
        ready_at_ms,
        dead_at_ms,
        ttl,
        expired,
        unique,
        priority,
        group,
        body,
        last_failure,
    })
}

pub fn id_json(id: &str) -> String {
    json!({ "id": id }).to_string()
}

/// `push --json` of a message not stored: its key's holder's id.
pub fn duplicate_json(id: &str) -> String {
    json!({ "id": id, "duplicate": true }).to_string()
}

pub fn queue_json(name: &str) -> String {
    json!({ "queue": name }).to_string()
}

pub fn count_json(key: &str, n: u64) -> String {
    let mut obj = Map::new();
    obj.insert(key.into(), json!(n));
    Value::Object(obj).to_string()
}

/// The JSON object of one queue's figures.
pub fn stats_value(s: &Stats) -> Value {
    json!({
        "queue": s.queue,
        "ready": s.ready,
        "leased": s.leased,
        "delayed": s.delayed,
        "dead": s.dead,
        "expired": s.expired,
        "pushed": s.pushed,
        "acked": s.acked,
        "purged": s.purged,
        "corrupt": s.corrupt,
        "bytes": s.bytes,
        "segments": s.segments,
        "disk_bytes": s.disk_bytes,
        "oldest_ready_age_ms": s.oldest_ready_age_ms,
        "groups_blocked": s.groups_blocked,
    })
}

/// One queue's figures as a stable tab-separated line, for pipes: queue,
/// ready, leased, delayed, dead, pushed, acked, bytes, segments,
/// oldest_ready_age_ms.
pub fn stats_tsv(s: &Stats) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        s.queue,
        s.ready,
        s.leased,
        s.delayed,
        s.dead,
        s.pushed,
        s.acked,
        s.bytes,
        s.segments,
        s.oldest_ready_age_ms
    )
}

/// Figures in the Prometheus text exposition format (for node_exporter's
/// textfile collector): one family per figure, one sample per queue.
pub fn stats_prometheus(rows: &[Stats]) -> String {
    type Get = fn(&Stats) -> f64;
    let families: [(&str, &str, &str, Get); 12] = [
        (
            "spoolmq_ready",
            "gauge",
            "Messages ready to be popped.",
            |s| s.ready as f64,
        ),
        (
            "spoolmq_leased",
            "gauge",
            "Messages leased (being worked on).",
            |s| s.leased as f64,
        ),
        (
            "spoolmq_delayed",
            "gauge",
            "Messages not deliverable yet.",
            |s| s.delayed as f64,
        ),
        ("spoolmq_dead", "gauge", "Dead letters.", |s| s.dead as f64),
        (
            "spoolmq_expired",
            "gauge",
            "Dead letters whose TTL passed (counted in spoolmq_dead too).",
            |s| s.expired as f64,
        ),
        (
            "spoolmq_pushed_total",
            "counter",
            "Messages pushed since the queue was created.",
            |s| s.pushed as f64,
        ),
        (
            "spoolmq_acked_total",
            "counter",
            "Messages acked since the queue was created.",
            |s| s.acked as f64,
        ),
        (
            "spoolmq_purged_total",
            "counter",
            "Messages purged since the queue was created.",
            |s| s.purged as f64,
        ),
        (
            "spoolmq_bytes",
            "gauge",
            "Body bytes of messages not yet acked or purged.",
            |s| s.bytes as f64,
        ),
        ("spoolmq_segments", "gauge", "Segment files.", |s| {
            s.segments as f64
        }),
        (
            "spoolmq_oldest_ready_age_seconds",
            "gauge",
            "Age of the oldest ready message.",
            |s| s.oldest_ready_age_ms as f64 / 1000.0,
        ),
        (
            "spoolmq_groups_blocked",
            "gauge",
            "Ordered groups whose oldest message is leased or delayed while more wait behind it.",
            |s| s.groups_blocked as f64,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, get) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for s in rows {
            // Queue names are [A-Za-z0-9._-]: nothing to escape in a label.
            out.push_str(&format!("{name}{{queue=\"{}\"}} {}\n", s.queue, get(s)));
        }
    }
    out
}

/// A size for people: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An age for people: `0s`, `45s`, `3m`, `2h`, `5d`.
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A readable table of queue figures.
pub fn stats_table(rows: &[Stats]) -> String {
    let header = [
        "QUEUE", "READY", "LEASED", "DELAYED", "DEAD", "EXPIRED", "PUSHED", "ACKED", "BYTES",
        "SEGMENTS", "OLDEST", "BLOCKED",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for s in rows {
        cells.push(vec![
            s.queue.clone(),
            s.ready.to_string(),
            s.leased.to_string(),
            s.delayed.to_string(),
            s.dead.to_string(),
            s.expired.to_string(),
            s.pushed.to_string(),
            s.acked.to_string(),
            human_bytes(s.bytes),
            s.segments.to_string(),
            if s.ready == 0 {
                "-".into()
            } else {
                human_age(s.oldest_ready_age_ms)
            },
            s.groups_blocked.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_one_message_on_one_line() {
        assert_eq!(escape(b"plain text"), "plain text");
        assert_eq!(escape(b"a\nb\tc\rd\\e"), "a\\nb\\tc\\rd\\\\e");
        assert_eq!(escape(b"\x00\x1b"), "\\x00\\x1b");
        assert_eq!(escape(b"caf\xc3\xa9 \xff"), "caf\u{e9} \\xff");
    }

    #[test]
    fn a_binary_body_comes_as_base64() {
        let d = Delivery {
            receipt: "0123456789abcdef0123456789abcdef01234567".into(),
            attempt: 2,
            body: vec![0xff, 0x00],
        };
        let v: Value = serde_json::from_str(&delivery_json(&d)).unwrap();
        assert_eq!(v["body_base64"], "/wA=");
        assert!(v.get("body").is_none());
        assert_eq!(v["attempt"], 2);
    }

    /// The escaping as it was before it was streamed: the reference.
    fn escape_reference(body: &[u8]) -> String {
        let mut out = String::new();
        for chunk in body.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c if c.is_control() && (c as u32) < 0x80 => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    /// The JSON body member as it was before it was streamed.
    fn body_reference(body: &[u8]) -> Value {
        match std::str::from_utf8(body) {
            Ok(s) => json!({ "body": s }),
            Err(_) => json!({
                "body_base64": base64::engine::general_purpose::STANDARD.encode(body)
            }),
        }
    }

    #[test]
    fn streamed_output_is_what_whole_copies_gave() {
        let mut rng = crate::base::simfs::XorShift(11);
        for round in 0..90 {
            // Short and long bodies (past the output chunk), text and binary.
            let len = match round % 3 {
                0 => rng.below(40) as usize,
                1 => OUT_CHUNK + rng.below(3 * OUT_CHUNK as u64) as usize,
                _ => rng.below(2 * OUT_CHUNK as u64) as usize,
            };
            let pool: &[&[u8]] = &[
                b"a",
                b"\\",
                b"\n",
                b"\x00",
                b"\x7f",
                b"\x08\x0c\t\r\x1f",
                "é".as_bytes(),
                "\u{85}".as_bytes(),
                b"\xff",
                b"\"",
                b"\xc3",
                b"zz",
            ];
            let mut body = Vec::with_capacity(len);
            while body.len() < len {
                let p = pool[rng.below(pool.len() as u64) as usize];
                // Mostly one kind per body, so that long runs occur too.
                let p = if rng.below(4) == 0 {
                    p
                } else {
                    pool[round % pool.len()]
                };
                body.extend_from_slice(p);
            }
            assert_eq!(escape(&body), escape_reference(&body), "round {round}");
            let d = Delivery {
                receipt: "0123456789abcdefr".into(),
                attempt: [0, 3, 10, 4_294_967_295][round % 4],
                body: body.clone(),
            };
            let v: Value = serde_json::from_str(&delivery_json(&d)).unwrap();
            let mut want = Map::new();
            want.insert("id".into(), json!("0123456789abcdef"));
            want.insert("receipt".into(), json!(d.receipt));
            want.insert("attempt".into(), json!(d.attempt));
            if let Value::Object(b) = body_reference(&body) {
                want.extend(b);
            }
            let want = Value::Object(want);
            assert_eq!(v, want, "round {round}");
            // Byte for byte what serde_json printed before.
            assert_eq!(delivery_json(&d), want.to_string(), "round {round}");
            assert_eq!(
                delivery_plain(&d),
                format!(
                    "0123456789abcdef\t{}\t{}\t{}",
                    d.receipt,
                    d.attempt,
                    escape_reference(&body)
                )
            );
        }
        let m = crate::queue::Exported {
            id: "x".into(),
            state: "delayed".into(),
            attempts: 2,
            pushed_at_ms: 5,
            dead_at_ms: None,
            ready_at_ms: Some(9),
            ttl: None,
            priority: 3,
            group: None,
            expired: false,
            unique: None,
            body: b"\xff\x00".to_vec(),
            last_failure: None,
        };
        assert_eq!(
            exported_json(&m),
            r#"{"id":"x","state":"delayed","attempt":2,"pushed_at_ms":5,"ready_at_ms":9,"priority":3,"body_base64":"/wA="}"#
        );
        assert_eq!(parse_exported(&exported_json(&m), 1000).unwrap(), m);
        let p = Peeked {
            id: "p".into(),
            attempt: 1,
            body: b"a\tb".to_vec(),
            last_failure: None,
        };
        assert_eq!(peeked_json(&p), r#"{"id":"p","attempt":1,"body":"a\tb"}"#);
        assert_eq!(peeked_plain(&p), "p\t1\ta\\tb");
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_age(45_000), "45s");
        assert_eq!(human_age(7_200_000), "2h");
    }
}
