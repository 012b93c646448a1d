//! Validation of what users type: queue names and durations.
//!
//! Parsing never does I/O. Every rejection is an [`Error::Usage`] (exit 2)
//! whose message names the rule that was broken.

use crate::base::error::{Error, Result};
use std::time::Duration;

/// The longest queue name allowed.
pub const MAX_QUEUE_NAME: usize = 64;

/// The rule, as printed in errors and help.
pub const QUEUE_NAME_RULE: &str =
    "a queue name is 1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'";

/// Checks a queue name against the contract's rule.
pub fn queue_name(name: &str) -> Result<&str> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let valid = !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME
        && name.chars().all(ok_char)
        && !name.starts_with(['.', '-']);
    if valid {
        Ok(name)
    } else {
        Err(Error::usage(format!(
            "invalid queue name {:?}: {QUEUE_NAME_RULE}",
            name
        )))
    }
}

/// The longest duration accepted (about 100 years), so that deadlines
/// never overflow u64 milliseconds; `import` holds its times to it too.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 86_400_000;

/// The highest `--priority` (the most urgent); 0, the default, is the
/// lowest, so a plain push never goes ahead of one given a priority.
pub const MAX_PRIORITY: u8 = 9;

/// Parses a `--priority`: a whole number from 0 (the default, the lowest)
/// to [`MAX_PRIORITY`] (the most urgent).
pub fn priority(text: &str) -> Result<u8> {
    match text.parse::<u8>() {
        Ok(p) if p <= MAX_PRIORITY => Ok(p),
        _ => Err(Error::usage(format!(
            "invalid priority {text:?}: use a whole number from 0 (the default, the lowest) to 9 (the most urgent)"
        ))),
    }
}

/// Parses `30`, `30s`, `500ms`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn duration(text: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "invalid duration {text:?}: use a whole number with an optional unit: ms, s, m, h or d (e.g. 500ms, 30s, 5m)"
        ))
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let (num, unit) = text.split_at(digits);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(ms_per_unit) {
        Some(ms) if ms <= MAX_DURATION_MS => Ok(Duration::from_millis(ms)),
        _ => Err(Error::usage(format!(
            "invalid duration {text:?}: longer than 100 years"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_the_contract_parse() {
        assert_eq!(duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(duration("1d").unwrap(), Duration::from_secs(86400));
        assert_eq!(duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_usage_errors() {
        for bad in [
            "",
            "s",
            "-1",
            "1.5s",
            "5x",
            " 5",
            "5 s",
            "1h30m",
            "99999999999999999999",
        ] {
            let e = duration(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        assert!(duration("999999999d").is_err());
    }

    #[test]
    fn queue_names_follow_the_rule() {
        for ok in ["a", "jobs", "A-Z_0.9", "x-", &"q".repeat(64)] {
            assert!(queue_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "../x",
            "a/b",
            "a b",
            "a\0b",
            "é",
            &"q".repeat(65),
        ] {
            let e = queue_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("queue name"));
        }
    }
}
