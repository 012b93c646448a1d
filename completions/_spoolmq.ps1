
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'spoolmq' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'spoolmq'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'spoolmq' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Add messages to a queue (each BODY, each stdin line, or all of stdin)')
            [CompletionResult]::new('pop', 'pop', [CompletionResultType]::ParameterValue, 'Lease ready messages, oldest first')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Delete leased messages: their work is done')
            [CompletionResult]::new('nack', 'nack', [CompletionResultType]::ParameterValue, 'Give leased messages back for another attempt')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Make a lease end later, for long work')
            [CompletionResult]::new('retry', 'retry', [CompletionResultType]::ParameterValue, 'Move dead letters back to ready, or into another queue')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Show counters per queue')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Pop a message and run a command on it; ack on success, nack on failure')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the queues in the spool')
            [CompletionResult]::new('peek', 'peek', [CompletionResultType]::ParameterValue, 'Show ready messages without leasing them (--dead: dead letters, with their last failure)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show everything about one message: state, attempts, times, its last failure')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete every ready and delayed message (or, with --dead, every dead letter)')
            [CompletionResult]::new('fsck', 'fsck', [CompletionResultType]::ParameterValue, 'Check every record and the index; --repair fixes what it finds')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write every message that holds a body as JSON lines (a backup, or to move a queue)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Push messages written by export back into a queue (one fsync)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check that the spool''s file system keeps spoolmq''s promises')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create the spool, or with --group share it with a group')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make a new random encryption key, for --key-file')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Convert the spool to another store, keeping every message and its state')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Measure push throughput and push-to-pop latency on a scratch queue')
            [CompletionResult]::new('bench-worker', 'bench-worker', [CompletionResultType]::ParameterValue, '(internal) a producer or consumer process of `spoolmq bench`')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff), of spoolmq or of one command')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'spoolmq;push' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Not deliverable before this long from now')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Time to live: not acked by then, the message is not delivered again but kept as a dead letter marked expired (whole seconds, rounded up)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'A unique key (up to 256 bytes): while a message with this key is ready, delayed or leased, a push with it stores nothing and prints that message''s id (exit 0; stderr says so, --json adds "duplicate": true)')
            [CompletionResult]::new('--unique-for', '--unique-for', [CompletionResultType]::ParameterName, 'Hold the key for DUR after its message is acked too (whole seconds, rounded up), so work done a moment ago is not queued again')
            [CompletionResult]::new('--priority', '--priority', [CompletionResultType]::ParameterName, '0 to 9, 9 the most urgent: pop serves the highest priority ready message first, oldest first within one; a plain push is 0')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'An ordered group (up to 256 bytes): its messages are delivered one at a time, in push order; the next is not ready while an earlier one is leased or waiting for a retry (a dead letter lets it go)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'Each line of stdin (newline stripped) is one message')
            [CompletionResult]::new('--key-from-line', '--key-from-line', [CompletionResultType]::ParameterName, 'With --lines: each line is also its own unique key')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;pop' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'How many messages to lease at most')
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'How long the lease lasts')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait for a message (up to DUR; forever without DUR)')
            [CompletionResult]::new('--max-attempts', '--max-attempts', [CompletionResultType]::ParameterName, 'Deliveries after which a nacked or expired message becomes a dead letter')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;ack' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;nack' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Redeliver no sooner than this long from now')
            [CompletionResult]::new('--backoff', '--backoff', [CompletionResultType]::ParameterName, 'Redeliver after a backoff that grows with each message''s attempts: BASE after the first, doubling each attempt up to --backoff-max, jittered to 0.5x..1x of the step (one delay or the other: this conflicts with --delay)')
            [CompletionResult]::new('--backoff-max', '--backoff-max', [CompletionResultType]::ParameterName, 'The longest backoff step')
            [CompletionResult]::new('--reason', '--reason', [CompletionResultType]::ParameterName, 'Why the attempt failed, kept with the message')
            [CompletionResult]::new('--max-attempts', '--max-attempts', [CompletionResultType]::ParameterName, 'Deliveries after which a nacked or expired message becomes a dead letter')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;extend' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'The lease now ends this long from now')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;retry' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Move them into queue OTHER (made if missing) as new messages, instead of back into QUEUE')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;stats' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Refresh every INTERVAL (2s without one) with rates, until interrupted')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('--prometheus', '--prometheus', [CompletionResultType]::ParameterName, 'Print the Prometheus text format (for node_exporter''s textfile collector)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;exec' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Wait for a message (up to DUR; forever without DUR)')
            [CompletionResult]::new('--lease', '--lease', [CompletionResultType]::ParameterName, 'How long the lease lasts')
            [CompletionResult]::new('--max-attempts', '--max-attempts', [CompletionResultType]::ParameterName, 'Deliveries after which a nacked or expired message becomes a dead letter')
            [CompletionResult]::new('--backoff', '--backoff', [CompletionResultType]::ParameterName, 'After a failed attempt, the message comes back after BASE, doubling each attempt up to --backoff-max, jittered to 0.5x..1x of the step (0: at once)')
            [CompletionResult]::new('--backoff-max', '--backoff-max', [CompletionResultType]::ParameterName, 'The longest backoff step')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Stop a command still running after DUR (SIGTERM to its process group, SIGKILL after --kill-after); the attempt failed')
            [CompletionResult]::new('--kill-after', '--kill-after', [CompletionResultType]::ParameterName, 'From SIGTERM to SIGKILL, after --timeout and when exec is stopped by SIGTERM or SIGINT')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Run up to N commands at once, each on a message of its own')
            [CompletionResult]::new('--max-messages', '--max-messages', [CompletionResultType]::ParameterName, 'Start no more than N messages, then end once the running ones are done')
            [CompletionResult]::new('--max-time', '--max-time', [CompletionResultType]::ParameterName, 'Start no message after DUR, then end once the running ones are done')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('--loop', '--loop', [CompletionResultType]::ParameterName, 'Keep going until the queue is empty')
            [CompletionResult]::new('--exit-code', '--exit-code', [CompletionResultType]::ParameterName, 'Exit with the command''s own exit status (128+N after signal N, 124 timed out, 127 not found, 126 could not start) instead of 1 when it failed')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;list' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;peek' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'How many messages to show at most')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('--dead', '--dead', [CompletionResultType]::ParameterName, 'Show dead letters instead, oldest first, each with its last failure')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;inspect' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;purge' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--older-than', '--older-than', [CompletionResultType]::ParameterName, 'With --dead: only the dead letters dead for at least DUR')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('--dead', '--dead', [CompletionResultType]::ParameterName, 'Purge the dead letters instead')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;fsck' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('--repair', '--repair', [CompletionResultType]::ParameterName, 'Truncate torn tails, quarantine damaged records, rebuild the index')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;export' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;import' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;doctor' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;init' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Share the spool with this group: directories 2770 (setgid), files 0660; its members can use it, nobody else can')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;keygen' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write the key to this new file, created 0600 whatever the umask (an existing file is refused). Without it the key is printed on stdout: `keygen > FILE` lets the shell create FILE with the umask''s mode, readable by others until spoolmq makes it 0600')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write the key to this new file, created 0600 whatever the umask (an existing file is refused). Without it the key is printed on stdout: `keygen > FILE` lets the shell create FILE with the umask''s mode, readable by others until spoolmq makes it 0600')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;migrate' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The store to convert to')
            [CompletionResult]::new('--into', '--into', [CompletionResultType]::ParameterName, 'Build the converted spool in DIR (missing or empty), or for `--to postgres` in the database at this URL, and leave this one as it is, instead of converting in place')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;bench' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Messages to push (and, one by one, to time from push to pop)')
            [CompletionResult]::new('--size', '--size', [CompletionResultType]::ParameterName, 'Body size in bytes')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Messages per push (one fsync each) in the throughput run')
            [CompletionResult]::new('--producers', '--producers', [CompletionResultType]::ParameterName, 'Producer processes in the latency run')
            [CompletionResult]::new('--consumers', '--consumers', [CompletionResultType]::ParameterName, 'Consumer processes in the latency run')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;bench-worker' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;completions' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;man' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The spool directory')
            [CompletionResult]::new('--store', '--store', [CompletionResultType]::ParameterName, 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq''s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON, one object per line')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'spoolmq;help' {
            [CompletionResult]::new('push', 'push', [CompletionResultType]::ParameterValue, 'Add messages to a queue (each BODY, each stdin line, or all of stdin)')
            [CompletionResult]::new('pop', 'pop', [CompletionResultType]::ParameterValue, 'Lease ready messages, oldest first')
            [CompletionResult]::new('ack', 'ack', [CompletionResultType]::ParameterValue, 'Delete leased messages: their work is done')
            [CompletionResult]::new('nack', 'nack', [CompletionResultType]::ParameterValue, 'Give leased messages back for another attempt')
            [CompletionResult]::new('extend', 'extend', [CompletionResultType]::ParameterValue, 'Make a lease end later, for long work')
            [CompletionResult]::new('retry', 'retry', [CompletionResultType]::ParameterValue, 'Move dead letters back to ready, or into another queue')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Show counters per queue')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Pop a message and run a command on it; ack on success, nack on failure')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the queues in the spool')
            [CompletionResult]::new('peek', 'peek', [CompletionResultType]::ParameterValue, 'Show ready messages without leasing them (--dead: dead letters, with their last failure)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show everything about one message: state, attempts, times, its last failure')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Delete every ready and delayed message (or, with --dead, every dead letter)')
            [CompletionResult]::new('fsck', 'fsck', [CompletionResultType]::ParameterValue, 'Check every record and the index; --repair fixes what it finds')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write every message that holds a body as JSON lines (a backup, or to move a queue)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Push messages written by export back into a queue (one fsync)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check that the spool''s file system keeps spoolmq''s promises')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create the spool, or with --group share it with a group')
            [CompletionResult]::new('keygen', 'keygen', [CompletionResultType]::ParameterValue, 'Make a new random encryption key, for --key-file')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Convert the spool to another store, keeping every message and its state')
            [CompletionResult]::new('bench', 'bench', [CompletionResultType]::ParameterValue, 'Measure push throughput and push-to-pop latency on a scratch queue')
            [CompletionResult]::new('bench-worker', 'bench-worker', [CompletionResultType]::ParameterValue, '(internal) a producer or consumer process of `spoolmq bench`')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff), of spoolmq or of one command')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'spoolmq;help;push' {
            break
        }
        'spoolmq;help;pop' {
            break
        }
        'spoolmq;help;ack' {
            break
        }
        'spoolmq;help;nack' {
            break
        }
        'spoolmq;help;extend' {
            break
        }
        'spoolmq;help;retry' {
            break
        }
        'spoolmq;help;stats' {
            break
        }
        'spoolmq;help;exec' {
            break
        }
        'spoolmq;help;list' {
            break
        }
        'spoolmq;help;peek' {
            break
        }
        'spoolmq;help;inspect' {
            break
        }
        'spoolmq;help;purge' {
            break
        }
        'spoolmq;help;fsck' {
            break
        }
        'spoolmq;help;export' {
            break
        }
        'spoolmq;help;import' {
            break
        }
        'spoolmq;help;doctor' {
            break
        }
        'spoolmq;help;init' {
            break
        }
        'spoolmq;help;keygen' {
            break
        }
        'spoolmq;help;migrate' {
            break
        }
        'spoolmq;help;bench' {
            break
        }
        'spoolmq;help;bench-worker' {
            break
        }
        'spoolmq;help;completions' {
            break
        }
        'spoolmq;help;man' {
            break
        }
        'spoolmq;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
