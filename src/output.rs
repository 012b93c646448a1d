//! What commands print: JSON lines (the contract) and plain text.
//!
//! Plain message lines are tab-separated with the body escaped, so one
//! message is always one line: `\\`, `\n`, `\t`, `\r`, and `\xHH` for other
//! control bytes and bytes that are not valid UTF-8.

use crate::queue::{Delivery, Peeked, Stats};
use base64::Engine;
use serde_json::{Map, Value, json};

/// Escapes a body for a plain, one-line display.
pub fn escape(body: &[u8]) -> String {
    let mut out = String::with_capacity(body.len());
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

/// Puts the body in `obj` as `body`, or `body_base64` when it is not UTF-8.
fn put_body(obj: &mut Map<String, Value>, body: &[u8]) {
    match std::str::from_utf8(body) {
        Ok(s) => obj.insert("body".into(), Value::String(s.to_string())),
        Err(_) => obj.insert(
            "body_base64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
        ),
    };
}

pub fn delivery_json(d: &Delivery) -> String {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(d.id));
    obj.insert("receipt".into(), json!(d.receipt));
    obj.insert("attempt".into(), json!(d.attempt));
    put_body(&mut obj, &d.body);
    Value::Object(obj).to_string()
}

pub fn delivery_plain(d: &Delivery) -> String {
    format!(
        "{}\t{}\t{}\t{}",
        d.id,
        d.receipt,
        d.attempt,
        escape(&d.body)
    )
}

pub fn peeked_json(p: &Peeked) -> String {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(p.id));
    obj.insert("attempt".into(), json!(p.attempt));
    put_body(&mut obj, &p.body);
    Value::Object(obj).to_string()
}

pub fn peeked_plain(p: &Peeked) -> String {
    format!("{}\t{}\t{}", p.id, p.attempt, escape(&p.body))
}

pub fn exported_json(m: &crate::queue::Exported) -> String {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(m.id));
    obj.insert("state".into(), json!(m.state));
    obj.insert("attempt".into(), json!(m.attempts));
    obj.insert("pushed_at_ms".into(), json!(m.pushed_at_ms));
    if let Some(t) = m.ready_at_ms {
        obj.insert("ready_at_ms".into(), json!(t));
    }
    put_body(&mut obj, &m.body);
    Value::Object(obj).to_string()
}

/// Parses a line written by [`exported_json`]. Its numbers must be what
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
    let latest = now_ms.saturating_add(crate::input::MAX_DURATION_MS);
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
        body,
    })
}

pub fn id_json(id: &str) -> String {
    json!({ "id": id }).to_string()
}

pub fn queue_json(name: &str) -> String {
    json!({ "queue": name }).to_string()
}

pub fn count_json(key: &str, n: u64) -> String {
    let mut obj = Map::new();
    obj.insert(key.into(), json!(n));
    Value::Object(obj).to_string()
}

pub fn stats_json(s: &Stats) -> String {
    stats_value(s).to_string()
}

/// The JSON object of one queue's figures.
pub fn stats_value(s: &Stats) -> Value {
    json!({
        "queue": s.queue,
        "ready": s.ready,
        "leased": s.leased,
        "delayed": s.delayed,
        "dead": s.dead,
        "pushed": s.pushed,
        "acked": s.acked,
        "purged": s.purged,
        "corrupt": s.corrupt,
        "bytes": s.bytes,
        "segments": s.segments,
        "disk_bytes": s.disk_bytes,
        "oldest_ready_age_ms": s.oldest_ready_age_ms,
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
    let families: [(&str, &str, &str, Get); 10] = [
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
        "QUEUE", "READY", "LEASED", "DELAYED", "DEAD", "PUSHED", "ACKED", "BYTES", "SEGMENTS",
        "OLDEST",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for s in rows {
        cells.push(vec![
            s.queue.clone(),
            s.ready.to_string(),
            s.leased.to_string(),
            s.delayed.to_string(),
            s.dead.to_string(),
            s.pushed.to_string(),
            s.acked.to_string(),
            human_bytes(s.bytes),
            s.segments.to_string(),
            if s.ready == 0 {
                "-".into()
            } else {
                human_age(s.oldest_ready_age_ms)
            },
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
            id: "1".into(),
            receipt: "r".into(),
            attempt: 2,
            body: vec![0xff, 0x00],
        };
        let v: Value = serde_json::from_str(&delivery_json(&d)).unwrap();
        assert_eq!(v["body_base64"], "/wA=");
        assert!(v.get("body").is_none());
        assert_eq!(v["attempt"], 2);
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_age(45_000), "45s");
        assert_eq!(human_age(7_200_000), "2h");
    }
}
