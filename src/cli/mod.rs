//! The command-line interface: clap definitions only. Values are validated
//! here (queue names, durations, counts), so a usage error exits 2 before
//! anything is opened or created.

pub mod app;
pub(crate) mod output;

use crate::model::input;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

fn queue_name(s: &str) -> Result<String, String> {
    input::queue_name(s)
        .map(str::to_string)
        .map_err(|e| e.to_string())
}

fn priority(s: &str) -> Result<u8, String> {
    input::priority(s).map_err(|e| e.to_string())
}

fn duration(s: &str) -> Result<Duration, String> {
    input::duration(s).map_err(|e| e.to_string())
}

/// A durable message queue that lives in a directory.
#[derive(Debug, Parser)]
#[command(
    name = "spoolmq",
    version,
    // `--version` also names the commit it was built from (build.rs); the
    // man pages keep the plain version, so they stay the same across commits.
    long_version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SPOOLMQ_BUILD_COMMIT"), ")"),
    about = "A durable message queue that lives in a directory",
    long_about = "A durable message queue that lives in a directory: shell scripts, cron jobs and CI \
                  pipelines hand work to each other through a spool. Exit 0 after push, ack, nack \
                  or retry means the change is fsynced.",
    after_help = "Exit codes: 0 done, 1 runtime error, 2 usage error, 3 nothing to pop, 4 stale or unknown receipt.\n\
                  Spool: --dir > SPOOLMQ_DIR > $XDG_DATA_HOME/spoolmq > ~/.local/share/spoolmq."
)]
pub struct Cli {
    /// The spool directory
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// The store of a new spool: fs (segment files) or sqlite (one database
    /// file); an existing spool keeps the store it was created with
    /// [env: SPOOLMQ_STORE]
    #[arg(long, global = true, value_name = "STORE", value_parser = ["fs", "sqlite"])]
    pub store: Option<String>,

    /// A PostgreSQL database shared by workers on many hosts
    /// (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq's
    /// PG* variables and ~/.pgpass fill in the rest). Keep the password out
    /// of it: others can read a command line (use PGPASSWORD or ~/.pgpass).
    /// Wins over --dir [env: SPOOLMQ_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,

    /// Print JSON, one object per line
    #[arg(long, global = true)]
    pub json: bool,

    /// A key file made by `spoolmq keygen`: bodies pushed are encrypted with
    /// it, and bodies popped, peeked or exported decrypted (and those
    /// `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add messages to a queue (each BODY, each stdin line, or all of stdin)
    #[command(
        after_help = "Examples:\n  spoolmq push jobs 'resize img1.png' 'resize img2.png'\n  \
                            find . -name '*.log' | spoolmq push logs --lines\n  \
                            spoolmq push reminders --delay 1h < note.txt\n  \
                            spoolmq push alerts --ttl 10m 'disk almost full'\n  \
                            spoolmq push reports --key report-2026-12-01 'build report 2026-12-01'\n  \
                            ls /srv/inbox | spoolmq push files --lines --key-from-line --unique-for 1h\n  \
                            spoolmq push jobs --priority 9 'restore the production database'\n  \
                            spoolmq push orders --group customer-42 'charge order 1001'"
    )]
    Push(Lazy<PushArgs>),
    /// Lease ready messages, oldest first
    #[command(after_help = "Examples:\n  spoolmq pop jobs --json\n  \
                            spoolmq pop jobs --count 10 --lease 30s --json\n  \
                            spoolmq pop jobs --wait 1m --json")]
    Pop(Lazy<PopArgs>),
    /// Delete leased messages: their work is done
    #[command(
        after_help = "Examples:\n  r=$(spoolmq pop jobs --json | jq -r .receipt) && work && spoolmq ack jobs \"$r\"\n  spoolmq ack jobs \"$r1\" \"$r2\" \"$r3\"   # several at once, one fsync"
    )]
    Ack(Lazy<ReceiptsArgs>),
    /// Give leased messages back for another attempt
    #[command(
        after_help = "Examples:\n  spoolmq nack jobs \"$receipt\"\n  spoolmq nack jobs \"$receipt\" --delay 5m\n  \
                      spoolmq nack jobs \"$receipt\" --backoff 30s   # 15-30s after attempt 1, 30-60s after 2, ...\n  \
                      spoolmq nack jobs \"$receipt\" --backoff 1m --backoff-max 6h\n  \
                      spoolmq nack jobs \"$receipt\" --reason 'upstream answered 503'"
    )]
    Nack(Lazy<NackArgs>),
    /// Make a lease end later, for long work
    #[command(
        after_help = "Examples:\n  spoolmq extend jobs \"$receipt\" --lease 10m\n  while ! ./step; do spoolmq extend jobs \"$receipt\" --lease 1m; done"
    )]
    Extend(Lazy<ExtendArgs>),
    /// Move dead letters back to ready, or into another queue
    #[command(
        after_help = "Examples:\n  spoolmq retry jobs\n  spoolmq retry jobs 0000000000000007\n  \
                            spoolmq retry jobs --to jobs-later   # redrive into another queue\n\n\
                            A retried message starts over: no attempts counted, its last failure kept. \
                            With --to it becomes a new message of OTHER (a new id; its push time kept) and \
                            leaves QUEUE (counted as purged there); each batch of up to 1000 moves in one \
                            step a crash cannot split."
    )]
    Retry(Lazy<RetryArgs>),
    /// Show counters per queue
    #[command(
        after_help = "Examples:\n  spoolmq stats\n  spoolmq stats jobs --json\n  spoolmq stats --watch 1s"
    )]
    Stats(Lazy<StatsArgs>),
    /// Pop a message and run a command on it; ack on success, nack on failure
    #[command(
        after_help = "Examples:\n  spoolmq exec jobs -- sh -c 'convert \"$(cat)\" out.png'\n  \
                            spoolmq exec jobs --loop -- ./handle.sh\n  \
                            spoolmq exec jobs --loop --wait -- ./worker   # a long-running worker\n  \
                            spoolmq exec jobs --loop --backoff 30s --backoff-max 2h -- ./worker   # retry after 15-30s, 30-60s, ...\n  \
                            spoolmq exec jobs --loop --backoff 0 -- ./worker   # retry at once\n  \
                            spoolmq exec jobs --loop --timeout 5m --kill-after 30s -- ./worker\n  \
                            spoolmq exec jobs --loop --wait --jobs 4 -- ./worker   # 4 commands at once\n  \
                            spoolmq exec jobs --loop --max-messages 100 -- ./worker\n  \
                            spoolmq exec jobs --loop --max-time 50s -- ./worker   # from cron, every minute\n  \
                            spoolmq exec jobs --exit-code -- ./worker; echo \"worker said $?\"\n\n\
                            A failed attempt (non-zero exit, a signal, --timeout, a command that could not start) is \
                            nacked after the backoff. SIGTERM or SIGINT: no new message is started, the signal is sent to \
                            the running commands, SIGKILL after --kill-after; a command that exits 0 is acked, any other's \
                            message is given back at once, its attempt not counted; exit 143 (SIGTERM) or 130 (SIGINT). \
                            A second signal kills the commands at once."
    )]
    Exec(Lazy<ExecArgs>),
    /// List the queues in the spool
    #[command(after_help = "Examples:\n  spoolmq list\n  spoolmq list --json | jq -r .queue")]
    List,
    /// Show ready messages without leasing them (--dead: dead letters, with their last failure)
    #[command(
        after_help = "Examples:\n  spoolmq peek jobs\n  spoolmq peek jobs --count 5 --json\n  spoolmq peek jobs --dead --count 20"
    )]
    Peek(Lazy<PeekArgs>),
    /// Show everything about one message: state, attempts, times, its last failure
    #[command(
        after_help = "Examples:\n  spoolmq inspect jobs 0f3a9c2b7d41e865\n  spoolmq inspect jobs 0f3a9c2b7d41e865 --json | jq .last_failure.stderr\n\n\
                      The last failure says how the last failed attempt ended (exit status N, signal NAME, \
                      timed out after DUR, could not start: why, or a nack's --reason) and keeps the last \
                      2 KiB of the command's stderr. Exit 1 with one line if the queue holds no such message \
                      (never pushed, or acked or purged since)."
    )]
    Inspect(Lazy<InspectArgs>),
    /// Delete every ready and delayed message (or, with --dead, every dead letter)
    #[command(
        after_help = "Examples:\n  spoolmq purge jobs\n  spoolmq purge jobs --dead\n  spoolmq purge jobs --dead --older-than 7d   # retention, from cron\n\n\
                      --older-than counts from when each message became a dead letter (its last nack, or the end \
                      of the lease that ran out on its last attempt), as `inspect` and `export` show it \
                      (dead_at_ms). A dead letter whose time is not known (made by an older spoolmq, or \
                      rebuilt by fsck --repair) is kept: only `purge --dead` without --older-than \
                      removes it."
    )]
    Purge(Lazy<PurgeArgs>),
    /// Check every record and the index; --repair fixes what it finds
    #[command(after_help = "Examples:\n  spoolmq fsck\n  spoolmq fsck jobs --repair")]
    Fsck(Lazy<FsckArgs>),
    /// Write every message that holds a body as JSON lines (a backup, or to move a queue)
    #[command(
        after_help = "Examples:\n  spoolmq export jobs > jobs.jsonl\n  spoolmq export jobs | spoolmq --dir /other/spool import jobs"
    )]
    Export(Lazy<QueueArg>),
    /// Push messages written by export back into a queue (one fsync)
    #[command(
        after_help = "Examples:\n  spoolmq import jobs < jobs.jsonl\n  spoolmq export jobs | spoolmq --dir /new/spool import jobs"
    )]
    Import(Lazy<QueueArg>),
    /// Check that the spool's file system keeps spoolmq's promises
    #[command(
        after_help = "Examples:\n  spoolmq doctor\n  spoolmq --dir /mnt/shared/spool doctor --json"
    )]
    Doctor,
    /// Create the spool, or with --group share it with a group
    #[command(
        after_help = "Examples:\n  spoolmq init\n  sudo -u cron spoolmq --dir /var/spool/jobs init --group jobs   # cron pushes, workers of group jobs pop"
    )]
    Init(Lazy<InitArgs>),
    /// Make a new random encryption key, for --key-file
    #[command(
        after_help = "Examples:\n  spoolmq keygen --output ~/.config/spoolmq.key   # created 0600, never overwritten\n  spoolmq --key-file ~/.config/spoolmq.key push orders 'card 4242...'"
    )]
    Keygen(Lazy<KeygenArgs>),
    /// Convert the spool to another store, keeping every message and its state
    #[command(
        after_help = "Examples:\n  spoolmq migrate --to sqlite\n  spoolmq --dir /var/spool/jobs migrate --to fs --into /var/spool/jobs-fs"
    )]
    Migrate(Lazy<MigrateArgs>),
    /// Measure push throughput and push-to-pop latency on a scratch queue
    #[command(after_help = "Examples:\n  spoolmq bench\n  \
                            spoolmq bench --count 100000 --size 1024 --batch 1000 --json\n  \
                            spoolmq bench --producers 4 --consumers 4")]
    Bench(Lazy<BenchArgs>),
    /// (internal) a producer or consumer process of `spoolmq bench`
    #[command(hide = true)]
    BenchWorker(Lazy<BenchWorkerArgs>),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  spoolmq completions bash > ~/.local/share/bash-completion/completions/spoolmq\n  \
                            spoolmq completions zsh > ~/.zfunc/_spoolmq"
    )]
    Completions(Lazy<CompletionsArgs>),
    /// Print the man page (roff), of spoolmq or of one command
    #[command(after_help = "Examples:\n  spoolmq man | man -l -\n  spoolmq man push | man -l -")]
    Man(Lazy<ManArgs>),
}

#[derive(Debug, Args)]
pub struct QueueArg {
    #[arg(value_parser = queue_name)]
    pub queue: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Messages to push (and, one by one, to time from push to pop)
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub count: u64,
    /// Body size in bytes
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_073_741_824))]
    pub size: u64,
    /// Messages per push (one fsync each) in the throughput run
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
    /// Producer processes in the latency run
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub producers: u64,
    /// Consumer processes in the latency run
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub consumers: u64,
}

#[derive(Debug, Args)]
pub struct BenchWorkerArgs {
    /// produce or consume
    #[arg(value_parser = ["produce", "consume"])]
    pub role: String,
    #[arg(value_parser = queue_name)]
    pub queue: String,
    pub count: u64,
    #[arg(default_value_t = 100)]
    pub size: u64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "spoolmq", &mut out);
    out
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (spoolmq's own page without one)
    pub command: Option<String>,
}

/// The commands that have a man page of their own (`spoolmq-NAME.1`).
pub fn man_commands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_string())
        .collect()
}

/// A man page, in roff: spoolmq's, or the one of command `sub`.
pub fn man_page(sub: Option<&str>) -> Result<Vec<u8>, String> {
    use clap::CommandFactory;
    // The pages carry the plain version, not `--version`'s commit, so that
    // they stay the same across commits (tests/it/generated_files.rs).
    let top = Cli::command().long_version(None);
    let cmd = match sub {
        None => top,
        Some(name) => top
            .find_subcommand(name)
            .filter(|c| !c.is_hide_set())
            .cloned()
            .map(|c| c.name(format!("spoolmq-{name}")))
            .ok_or_else(|| {
                format!(
                    "no man page for {name:?}: the commands are {}",
                    man_commands().join(", ")
                )
            })?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Queue name
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// Message bodies, one message each; with none, stdin is one message
    pub bodies: Vec<OsString>,
    /// Each line of stdin (newline stripped) is one message
    #[arg(long, conflicts_with = "bodies")]
    pub lines: bool,
    /// Not deliverable before this long from now
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub delay: Option<Duration>,
    /// Time to live: not acked by then, the message is not delivered again
    /// but kept as a dead letter marked expired (whole seconds, rounded up)
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub ttl: Option<Duration>,
    /// A unique key (up to 256 bytes): while a message with this key is
    /// ready, delayed or leased, a push with it stores nothing and prints
    /// that message's id (exit 0; stderr says so, --json adds
    /// "duplicate": true)
    #[arg(long, value_name = "KEY", conflicts_with = "key_from_line")]
    pub key: Option<OsString>,
    /// With --lines: each line is also its own unique key
    #[arg(long)]
    pub key_from_line: bool,
    /// Hold the key for DUR after its message is acked too (whole seconds,
    /// rounded up), so work done a moment ago is not queued again
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub unique_for: Option<Duration>,
    /// 0 to 9, 9 the most urgent: pop serves the highest priority ready
    /// message first, oldest first within one; a plain push is 0
    #[arg(long, value_name = "N", value_parser = priority, conflicts_with = "group")]
    pub priority: Option<u8>,
    /// An ordered group (up to 256 bytes): its messages are delivered one
    /// at a time, in push order; the next is not ready while an earlier
    /// one is leased or waiting for a retry (a dead letter lets it go)
    #[arg(long, value_name = "G")]
    pub group: Option<OsString>,
}

#[derive(Debug, Args)]
pub struct PopArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// How many messages to lease at most
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Wait for a message (up to DUR; forever without DUR)
    #[arg(long, value_name = "DUR", num_args = 0..=1, value_parser = duration)]
    pub wait: Option<Option<Duration>>,
    #[command(flatten)]
    pub attempts: AttemptsArgs,
}

#[derive(Debug, Args)]
pub struct LeaseArgs {
    /// How long the lease lasts
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = duration)]
    pub lease: Duration,
}

#[derive(Debug, Args)]
pub struct AttemptsArgs {
    /// Deliveries after which a nacked or expired message becomes a dead letter
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub max_attempts: u32,
}

#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// Receipts printed by pop; `-` reads them from stdin, one per line (a
    /// receipt, a line of `pop --json`, or a plain line of `pop`)
    #[arg(required = true)]
    pub receipts: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct NackArgs {
    #[command(flatten)]
    pub target: ReceiptsArgs,
    /// Redeliver no sooner than this long from now
    #[arg(long, value_name = "DUR", value_parser = duration, conflicts_with = "backoff")]
    pub delay: Option<Duration>,
    /// Redeliver after a backoff that grows with each message's attempts:
    /// BASE after the first, doubling each attempt up to --backoff-max,
    /// jittered to 0.5x..1x of the step (one delay or the other: this
    /// conflicts with --delay)
    #[arg(long, value_name = "BASE", value_parser = duration)]
    pub backoff: Option<Duration>,
    /// The longest backoff step
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = duration, requires = "backoff")]
    pub backoff_max: Duration,
    /// Why the attempt failed, kept with the message
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub attempts: AttemptsArgs,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    #[command(flatten)]
    pub target: ReceiptsArgs,
    /// The lease now ends this long from now
    #[arg(long, value_name = "DUR", required = true, value_parser = duration)]
    pub lease: Duration,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// Ids of dead letters (all of them with none)
    pub ids: Vec<String>,
    /// Move them into queue OTHER (made if missing) as new messages, instead of back into QUEUE
    #[arg(long, value_name = "OTHER", value_parser = queue_name)]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this queue
    #[arg(value_parser = queue_name)]
    pub queue: Option<String>,
    /// Print the Prometheus text format (for node_exporter's textfile collector)
    #[arg(long, conflicts_with = "watch")]
    pub prometheus: bool,
    /// Refresh every INTERVAL (2s without one) with rates, until interrupted
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s", value_parser = duration)]
    pub watch: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// Keep going until the queue is empty
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Wait for a message (up to DUR; forever without DUR)
    #[arg(long, value_name = "DUR", num_args = 0..=1, value_parser = duration)]
    pub wait: Option<Option<Duration>>,
    #[command(flatten)]
    pub lease: LeaseArgs,
    #[command(flatten)]
    pub attempts: AttemptsArgs,
    /// After a failed attempt, the message comes back after BASE, doubling
    /// each attempt up to --backoff-max, jittered to 0.5x..1x of the step
    /// (0: at once)
    #[arg(long, value_name = "BASE", default_value = "10s", value_parser = duration)]
    pub backoff: Duration,
    /// The longest backoff step
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = duration)]
    pub backoff_max: Duration,
    /// Stop a command still running after DUR (SIGTERM to its process
    /// group, SIGKILL after --kill-after); the attempt failed
    #[arg(long, value_name = "DUR", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// From SIGTERM to SIGKILL, after --timeout and when exec is stopped
    /// by SIGTERM or SIGINT
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration)]
    pub kill_after: Duration,
    /// Run up to N commands at once, each on a message of its own
    #[arg(long, value_name = "N", default_value_t = 1, requires = "repeat", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,
    /// Start no more than N messages, then end once the running ones are done
    #[arg(long, value_name = "N", requires = "repeat", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: Option<u64>,
    /// Start no message after DUR, then end once the running ones are done
    #[arg(long, value_name = "DUR", requires = "repeat", value_parser = duration)]
    pub max_time: Option<Duration>,
    /// Exit with the command's own exit status (128+N after signal N, 124
    /// timed out, 127 not found, 126 could not start) instead of 1 when it
    /// failed
    #[arg(long, conflicts_with = "repeat")]
    pub exit_code: bool,
    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct PeekArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// How many messages to show at most
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Show dead letters instead, oldest first, each with its last failure
    #[arg(long)]
    pub dead: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// The message id (as push, pop or export print it)
    pub id: String,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[arg(value_parser = queue_name)]
    pub queue: String,
    /// Purge the dead letters instead
    #[arg(long)]
    pub dead: bool,
    /// With --dead: only the dead letters dead for at least DUR
    #[arg(long, value_name = "DUR", value_parser = duration, requires = "dead")]
    pub older_than: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Only this queue
    #[arg(value_parser = queue_name)]
    pub queue: Option<String>,
    /// Truncate torn tails, quarantine damaged records, rebuild the index
    #[arg(long)]
    pub repair: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn wait_takes_an_optional_duration() {
        let c = Cli::try_parse_from(["spoolmq", "pop", "q", "--wait"]).unwrap();
        let Command::Pop(Lazy(p)) = c.command else {
            panic!()
        };
        assert_eq!(p.wait, Some(None));
        let c = Cli::try_parse_from(["spoolmq", "pop", "q", "--wait", "2s"]).unwrap();
        let Command::Pop(Lazy(p)) = c.command else {
            panic!()
        };
        assert_eq!(p.wait, Some(Some(Duration::from_secs(2))));
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the key to this new file, created 0600 whatever the umask
    /// (an existing file is refused). Without it the key is printed on
    /// stdout: `keygen > FILE` lets the shell create FILE with the umask's
    /// mode, readable by others until spoolmq makes it 0600
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Share the spool with this group: directories 2770 (setgid), files
    /// 0660; its members can use it, nobody else can
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to convert to
    #[arg(long, value_name = "STORE", value_parser = ["fs", "sqlite", "postgres"])]
    pub to: String,
    /// Build the converted spool in DIR (missing or empty), or for
    /// `--to postgres` in the database at this URL, and leave this one as
    /// it is, instead of converting in place
    #[arg(long, value_name = "DIR|URL")]
    pub into: Option<PathBuf>,
}

/// A subcommand's arguments, defined only when that subcommand is run
/// ([`clap::Command::defer`]): defining every subcommand's arguments took
/// 15% of the instructions of a single push.
#[derive(Debug)]
pub struct Lazy<T>(pub T);

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_args)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_args_for_update)
    }
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

impl<T: clap::FromArgMatches> clap::FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Lazy)
    }
    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(m).map(Lazy)
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}
