//! crashlab: power loss on real file systems, for spoolmq's fs and sqlite
//! stores. `scripts/crash-lab.sh` drives it (losetup, mkfs, mount); this
//! program is the parts that need code: the FUSE recorder and server, the
//! workload, the choice of crash states and their judgement. See
//! docs/CRASHLAB.md for the method and its assumptions.
//!
//! ```text
//! crashlab record SIZE LOG MOUNTPOINT           serve `disk` and `pos`, log every write and flush
//! crashlab workload BIN SPOOL STORE POS JOURNAL  run the workload, journal each command
//! crashlab plan LOG PLAN FLUSHES TORN SEED [all] choose the crash states
//! crashlab serve LOG SIZE PLAN MOUNTPOINT        serve one image file per state
//! crashlab check BIN SPOOL JOURNAL STATE         judge a mounted state (exit 1: violations)
//! crashlab state NAME                           the plan line of one named state
//! crashlab image LOG SIZE STATE OUT              write a state's image, to keep it
//! ```

mod check;
mod fuse;
mod log;
mod plan;
mod workload;

use std::path::Path;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: see the top of crashlab/src/main.rs or docs/CRASHLAB.md");
    ExitCode::from(2)
}

fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{what}: not a number: {s:?}"))
}

fn read_plan(path: &Path) -> Result<Vec<plan::State>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

fn state_named(name: &str) -> Result<plan::State, String> {
    plan::parse(name).ok_or_else(|| format!("{name}: not a state name (f123 or t120-130-77)"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = Path::new;
    let result: Result<ExitCode, String> = (|| match a.as_slice() {
        ["record", size, log, mnt] => {
            let size = num(size, "size")?;
            fuse::record(size, p(log), p(mnt)).map_err(|e| format!("record: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        ["workload", bin, spool, store, pos, journal] => {
            let mut d = workload::Driver::new(p(bin), p(spool), store, p(pos));
            let done = d.run_all();
            let text = serde_json::to_string(&d.journal).map_err(|e| e.to_string())?;
            std::fs::write(journal, text).map_err(|e| format!("{journal}: {e}"))?;
            done?;
            println!("{} commands", d.journal.ops.len());
            Ok(ExitCode::SUCCESS)
        }
        ["plan", log, out, flushes, torn, seed, rest @ ..] => {
            let log = log::Log::read(p(log)).map_err(|e| e.to_string())?;
            let all = rest.first() == Some(&"all");
            let states = plan::plan(
                &log,
                num(flushes, "flushes")?,
                num(torn, "torn")?,
                num(seed, "seed")?,
                all,
            );
            let text: String = states
                .iter()
                .map(|s| serde_json::to_string(s).unwrap_or_default() + "\n")
                .collect();
            std::fs::write(out, text).map_err(|e| format!("{out}: {e}"))?;
            println!("{} flushes, {} states", log.flushes().len(), states.len());
            Ok(ExitCode::SUCCESS)
        }
        ["serve", log, size, plan_file, mnt] => {
            let log = log::Log::read(p(log)).map_err(|e| e.to_string())?;
            let states = read_plan(p(plan_file))?;
            fuse::serve(log, num(size, "size")?, states, p(mnt))
                .map_err(|e| format!("serve: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        ["check", bin, spool, journal, state] => {
            let text = std::fs::read_to_string(journal).map_err(|e| format!("{journal}: {e}"))?;
            let j: workload::Journal =
                serde_json::from_str(&text).map_err(|e| format!("{journal}: {e}"))?;
            let st = state_named(state)?;
            let o = check::check(p(bin), p(spool), &j, &st);
            for r in &o.repaired {
                println!("repaired: {r}");
            }
            for v in &o.violations {
                println!("violation: {v}");
            }
            Ok(if o.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ["state", name] => {
            let st = state_named(name)?;
            println!("{}", serde_json::to_string(&st).map_err(|e| e.to_string())?);
            Ok(ExitCode::SUCCESS)
        }
        ["image", log, size, state, out] => {
            let log = log::Log::read(p(log)).map_err(|e| e.to_string())?;
            let st = state_named(state)?;
            fuse::materialize(&log, num(size, "size")?, &st, p(out))
                .map_err(|e| format!("{out}: {e}"))?;
            println!("{}: {}", out, st.describe());
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(usage()),
    })();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crashlab: {e}");
            ExitCode::from(1)
        }
    }
}
