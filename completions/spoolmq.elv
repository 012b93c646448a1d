
use builtin;
use str;

set edit:completion:arg-completer[spoolmq] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'spoolmq'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'spoolmq'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand push 'Add messages to a queue (each BODY, each stdin line, or all of stdin)'
            cand pop 'Lease ready messages, oldest first'
            cand ack 'Delete leased messages: their work is done'
            cand nack 'Give leased messages back for another attempt'
            cand extend 'Make a lease end later, for long work'
            cand retry 'Move dead letters back to ready, or into another queue'
            cand stats 'Show counters per queue'
            cand exec 'Pop a message and run a command on it; ack on success, nack on failure'
            cand list 'List the queues in the spool'
            cand peek 'Show ready messages without leasing them (--dead: dead letters, with their last failure)'
            cand inspect 'Show everything about one message: state, attempts, times, its last failure'
            cand purge 'Delete every ready and delayed message (or, with --dead, every dead letter)'
            cand fsck 'Check every record and the index; --repair fixes what it finds'
            cand export 'Write every message that holds a body as JSON lines (a backup, or to move a queue)'
            cand import 'Push messages written by export back into a queue (one fsync)'
            cand doctor 'Check that the spool''s file system keeps spoolmq''s promises'
            cand init 'Create the spool, or with --group share it with a group'
            cand keygen 'Make a new random encryption key, for --key-file'
            cand migrate 'Convert the spool to another store, keeping every message and its state'
            cand bench 'Measure push throughput and push-to-pop latency on a scratch queue'
            cand bench-worker '(internal) a producer or consumer process of `spoolmq bench`'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff), of spoolmq or of one command'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'spoolmq;push'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --delay 'Not deliverable before this long from now'
            cand --ttl 'Time to live: not acked by then, the message is not delivered again but kept as a dead letter marked expired (whole seconds, rounded up)'
            cand --key 'A unique key (up to 256 bytes): while a message with this key is ready, delayed or leased, a push with it stores nothing and prints that message''s id (exit 0; stderr says so, --json adds "duplicate": true)'
            cand --unique-for 'Hold the key for DUR after its message is acked too (whole seconds, rounded up), so work done a moment ago is not queued again'
            cand --priority '0 to 9, 9 the most urgent: pop serves the highest priority ready message first, oldest first within one; a plain push is 0'
            cand --group 'An ordered group (up to 256 bytes): its messages are delivered one at a time, in push order; the next is not ready while an earlier one is leased or waiting for a retry (a dead letter lets it go)'
            cand --json 'Print JSON, one object per line'
            cand --lines 'Each line of stdin (newline stripped) is one message'
            cand --key-from-line 'With --lines: each line is also its own unique key'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;pop'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --count 'How many messages to lease at most'
            cand --lease 'How long the lease lasts'
            cand --wait 'Wait for a message (up to DUR; forever without DUR)'
            cand --max-attempts 'Deliveries after which a nacked or expired message becomes a dead letter'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;ack'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;nack'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --delay 'Redeliver no sooner than this long from now'
            cand --backoff 'Redeliver after a backoff that grows with each message''s attempts: BASE after the first, doubling each attempt up to --backoff-max, jittered to 0.5x..1x of the step (one delay or the other: this conflicts with --delay)'
            cand --backoff-max 'The longest backoff step'
            cand --reason 'Why the attempt failed, kept with the message'
            cand --max-attempts 'Deliveries after which a nacked or expired message becomes a dead letter'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;extend'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --lease 'The lease now ends this long from now'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;retry'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --to 'Move them into queue OTHER (made if missing) as new messages, instead of back into QUEUE'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;stats'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --watch 'Refresh every INTERVAL (2s without one) with rates, until interrupted'
            cand --json 'Print JSON, one object per line'
            cand --prometheus 'Print the Prometheus text format (for node_exporter''s textfile collector)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;exec'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --wait 'Wait for a message (up to DUR; forever without DUR)'
            cand --lease 'How long the lease lasts'
            cand --max-attempts 'Deliveries after which a nacked or expired message becomes a dead letter'
            cand --backoff 'After a failed attempt, the message comes back after BASE, doubling each attempt up to --backoff-max, jittered to 0.5x..1x of the step (0: at once)'
            cand --backoff-max 'The longest backoff step'
            cand --timeout 'Stop a command still running after DUR (SIGTERM to its process group, SIGKILL after --kill-after); the attempt failed'
            cand --kill-after 'From SIGTERM to SIGKILL, after --timeout and when exec is stopped by SIGTERM or SIGINT'
            cand --jobs 'Run up to N commands at once, each on a message of its own'
            cand --max-messages 'Start no more than N messages, then end once the running ones are done'
            cand --max-time 'Start no message after DUR, then end once the running ones are done'
            cand --json 'Print JSON, one object per line'
            cand --loop 'Keep going until the queue is empty'
            cand --exit-code 'Exit with the command''s own exit status (128+N after signal N, 124 timed out, 127 not found, 126 could not start) instead of 1 when it failed'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;list'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;peek'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --count 'How many messages to show at most'
            cand --json 'Print JSON, one object per line'
            cand --dead 'Show dead letters instead, oldest first, each with its last failure'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;inspect'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;purge'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --older-than 'With --dead: only the dead letters dead for at least DUR'
            cand --json 'Print JSON, one object per line'
            cand --dead 'Purge the dead letters instead'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;fsck'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand --repair 'Truncate torn tails, quarantine damaged records, rebuild the index'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;export'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;import'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;doctor'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;init'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --group 'Share the spool with this group: directories 2770 (setgid), files 0660; its members can use it, nobody else can'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;keygen'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand -o 'Write the key to this new file, created 0600 whatever the umask (an existing file is refused). Without it the key is printed on stdout: `keygen > FILE` lets the shell create FILE with the umask''s mode, readable by others until spoolmq makes it 0600'
            cand --output 'Write the key to this new file, created 0600 whatever the umask (an existing file is refused). Without it the key is printed on stdout: `keygen > FILE` lets the shell create FILE with the umask''s mode, readable by others until spoolmq makes it 0600'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;migrate'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --to 'The store to convert to'
            cand --into 'Build the converted spool in DIR (missing or empty), or for `--to postgres` in the database at this URL, and leave this one as it is, instead of converting in place'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;bench'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --count 'Messages to push (and, one by one, to time from push to pop)'
            cand --size 'Body size in bytes'
            cand --batch 'Messages per push (one fsync each) in the throughput run'
            cand --producers 'Producer processes in the latency run'
            cand --consumers 'Consumer processes in the latency run'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;bench-worker'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;completions'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;man'= {
            cand --dir 'The spool directory'
            cand --store 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]'
            cand --url 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]'
            cand --key-file 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]'
            cand --json 'Print JSON, one object per line'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'spoolmq;help'= {
            cand push 'Add messages to a queue (each BODY, each stdin line, or all of stdin)'
            cand pop 'Lease ready messages, oldest first'
            cand ack 'Delete leased messages: their work is done'
            cand nack 'Give leased messages back for another attempt'
            cand extend 'Make a lease end later, for long work'
            cand retry 'Move dead letters back to ready, or into another queue'
            cand stats 'Show counters per queue'
            cand exec 'Pop a message and run a command on it; ack on success, nack on failure'
            cand list 'List the queues in the spool'
            cand peek 'Show ready messages without leasing them (--dead: dead letters, with their last failure)'
            cand inspect 'Show everything about one message: state, attempts, times, its last failure'
            cand purge 'Delete every ready and delayed message (or, with --dead, every dead letter)'
            cand fsck 'Check every record and the index; --repair fixes what it finds'
            cand export 'Write every message that holds a body as JSON lines (a backup, or to move a queue)'
            cand import 'Push messages written by export back into a queue (one fsync)'
            cand doctor 'Check that the spool''s file system keeps spoolmq''s promises'
            cand init 'Create the spool, or with --group share it with a group'
            cand keygen 'Make a new random encryption key, for --key-file'
            cand migrate 'Convert the spool to another store, keeping every message and its state'
            cand bench 'Measure push throughput and push-to-pop latency on a scratch queue'
            cand bench-worker '(internal) a producer or consumer process of `spoolmq bench`'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff), of spoolmq or of one command'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'spoolmq;help;push'= {
        }
        &'spoolmq;help;pop'= {
        }
        &'spoolmq;help;ack'= {
        }
        &'spoolmq;help;nack'= {
        }
        &'spoolmq;help;extend'= {
        }
        &'spoolmq;help;retry'= {
        }
        &'spoolmq;help;stats'= {
        }
        &'spoolmq;help;exec'= {
        }
        &'spoolmq;help;list'= {
        }
        &'spoolmq;help;peek'= {
        }
        &'spoolmq;help;inspect'= {
        }
        &'spoolmq;help;purge'= {
        }
        &'spoolmq;help;fsck'= {
        }
        &'spoolmq;help;export'= {
        }
        &'spoolmq;help;import'= {
        }
        &'spoolmq;help;doctor'= {
        }
        &'spoolmq;help;init'= {
        }
        &'spoolmq;help;keygen'= {
        }
        &'spoolmq;help;migrate'= {
        }
        &'spoolmq;help;bench'= {
        }
        &'spoolmq;help;bench-worker'= {
        }
        &'spoolmq;help;completions'= {
        }
        &'spoolmq;help;man'= {
        }
        &'spoolmq;help;help'= {
        }
    ]
    $completions[$command]
}
