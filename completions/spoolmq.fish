# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_spoolmq_global_optspecs
    string join \n dir= store= url= json key-file= h/help V/version
end

function __fish_spoolmq_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_spoolmq_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_spoolmq_using_subcommand
    set -l cmd (__fish_spoolmq_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c spoolmq -n "__fish_spoolmq_needs_command" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_needs_command" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_needs_command" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_needs_command" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_needs_command" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -s V -l version -d 'Print version'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "push" -d 'Add messages to a queue (each BODY, each stdin line, or all of stdin)'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "pop" -d 'Lease ready messages, oldest first'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "ack" -d 'Delete leased messages: their work is done'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "nack" -d 'Give leased messages back for another attempt'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "extend" -d 'Make a lease end later, for long work'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "retry" -d 'Move dead letters back to ready, or into another queue'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "stats" -d 'Show counters per queue'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "exec" -d 'Pop a message and run a command on it; ack on success, nack on failure'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "list" -d 'List the queues in the spool'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "peek" -d 'Show ready messages without leasing them (--dead: dead letters, with their last failure)'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "inspect" -d 'Show everything about one message: state, attempts, times, its last failure'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "purge" -d 'Delete every ready and delayed message (or, with --dead, every dead letter)'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "fsck" -d 'Check every record and the index; --repair fixes what it finds'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "export" -d 'Write every message that holds a body as JSON lines (a backup, or to move a queue)'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "import" -d 'Push messages written by export back into a queue (one fsync)'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "doctor" -d 'Check that the spool\'s file system keeps spoolmq\'s promises'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "init" -d 'Create the spool, or with --group share it with a group'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "keygen" -d 'Make a new random encryption key, for --key-file'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "migrate" -d 'Convert the spool to another store, keeping every message and its state'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "bench" -d 'Measure push throughput and push-to-pop latency on a scratch queue'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "bench-worker" -d '(internal) a producer or consumer process of `spoolmq bench`'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "man" -d 'Print the man page (roff), of spoolmq or of one command'
complete -c spoolmq -n "__fish_spoolmq_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l delay -d 'Not deliverable before this long from now' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l ttl -d 'Time to live: not acked by then, the message is not delivered again but kept as a dead letter marked expired (whole seconds, rounded up)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l key -d 'A unique key (up to 256 bytes): while a message with this key is ready, delayed or leased, a push with it stores nothing and prints that message\'s id (exit 0; stderr says so, --json adds "duplicate": true)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l unique-for -d 'Hold the key for DUR after its message is acked too (whole seconds, rounded up), so work done a moment ago is not queued again' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l priority -d '0 to 9, 9 the most urgent: pop serves the highest priority ready message first, oldest first within one; a plain push is 0' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l group -d 'An ordered group (up to 256 bytes): its messages are delivered one at a time, in push order; the next is not ready while an earlier one is leased or waiting for a retry (a dead letter lets it go)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l lines -d 'Each line of stdin (newline stripped) is one message'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -l key-from-line -d 'With --lines: each line is also its own unique key'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand push" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l count -d 'How many messages to lease at most' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l lease -d 'How long the lease lasts' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l wait -d 'Wait for a message (up to DUR; forever without DUR)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l max-attempts -d 'Deliveries after which a nacked or expired message becomes a dead letter' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand pop" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand ack" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand ack" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand ack" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand ack" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand ack" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand ack" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l delay -d 'Redeliver no sooner than this long from now' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l backoff -d 'Redeliver after a backoff that grows with each message\'s attempts: BASE after the first, doubling each attempt up to --backoff-max, jittered to 0.5x..1x of the step (one delay or the other: this conflicts with --delay)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l backoff-max -d 'The longest backoff step' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l reason -d 'Why the attempt failed, kept with the message' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l max-attempts -d 'Deliveries after which a nacked or expired message becomes a dead letter' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand nack" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -l lease -d 'The lease now ends this long from now' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand extend" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -l to -d 'Move them into queue OTHER (made if missing) as new messages, instead of back into QUEUE' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand retry" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l watch -d 'Refresh every INTERVAL (2s without one) with rates, until interrupted' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -l prometheus -d 'Print the Prometheus text format (for node_exporter\'s textfile collector)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand stats" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l wait -d 'Wait for a message (up to DUR; forever without DUR)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l lease -d 'How long the lease lasts' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l max-attempts -d 'Deliveries after which a nacked or expired message becomes a dead letter' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l backoff -d 'After a failed attempt, the message comes back after BASE, doubling each attempt up to --backoff-max, jittered to 0.5x..1x of the step (0: at once)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l backoff-max -d 'The longest backoff step' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l timeout -d 'Stop a command still running after DUR (SIGTERM to its process group, SIGKILL after --kill-after); the attempt failed' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l kill-after -d 'From SIGTERM to SIGKILL, after --timeout and when exec is stopped by SIGTERM or SIGINT' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l jobs -d 'Run up to N commands at once, each on a message of its own' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l max-messages -d 'Start no more than N messages, then end once the running ones are done' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l max-time -d 'Start no message after DUR, then end once the running ones are done' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l loop -d 'Keep going until the queue is empty'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -l exit-code -d 'Exit with the command\'s own exit status (128+N after signal N, 124 timed out, 127 not found, 126 could not start) instead of 1 when it failed'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand exec" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand list" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand list" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand list" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand list" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand list" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand list" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l count -d 'How many messages to show at most' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -l dead -d 'Show dead letters instead, oldest first, each with its last failure'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand peek" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand inspect" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand inspect" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand inspect" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand inspect" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand inspect" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l older-than -d 'With --dead: only the dead letters dead for at least DUR' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -l dead -d 'Purge the dead letters instead'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand purge" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -l repair -d 'Truncate torn tails, quarantine damaged records, rebuild the index'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand fsck" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand export" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand export" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand export" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand export" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand export" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand export" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand import" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand import" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand import" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand import" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand import" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand import" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand doctor" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand doctor" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand doctor" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand doctor" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand doctor" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -l group -d 'Share the spool with this group: directories 2770 (setgid), files 0660; its members can use it, nobody else can' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand init" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -s o -l output -d 'Write the key to this new file, created 0600 whatever the umask (an existing file is refused). Without it the key is printed on stdout: `keygen > FILE` lets the shell create FILE with the umask\'s mode, readable by others until spoolmq makes it 0600' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l to -d 'The store to convert to' -r -f -a "fs\t''
sqlite\t''
postgres\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l into -d 'Build the converted spool in DIR (missing or empty), or for `--to postgres` in the database at this URL, and leave this one as it is, instead of converting in place' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l count -d 'Messages to push (and, one by one, to time from push to pop)' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l size -d 'Body size in bytes' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l batch -d 'Messages per push (one fsync each) in the throughput run' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l producers -d 'Producer processes in the latency run' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l consumers -d 'Consumer processes in the latency run' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench-worker" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench-worker" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench-worker" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench-worker" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench-worker" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand bench-worker" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand completions" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand completions" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand completions" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand completions" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand completions" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand completions" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand man" -l dir -d 'The spool directory' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand man" -l store -d 'The store of a new spool: fs (segment files) or sqlite (one database file); an existing spool keeps the store it was created with [env: SPOOLMQ_STORE]' -r -f -a "fs\t''
sqlite\t''"
complete -c spoolmq -n "__fish_spoolmq_using_subcommand man" -l url -d 'A PostgreSQL database shared by workers on many hosts (postgres://USER@HOST/DB, postgresql://..., or key=value; libpq\'s PG* variables and ~/.pgpass fill in the rest). Keep the password out of it: others can read a command line (use PGPASSWORD or ~/.pgpass). Wins over --dir [env: SPOOLMQ_URL]' -r
complete -c spoolmq -n "__fish_spoolmq_using_subcommand man" -l key-file -d 'A key file made by `spoolmq keygen`: bodies pushed are encrypted with it, and bodies popped, peeked or exported decrypted (and those `retry --to` moves sealed again) [env: SPOOLMQ_KEY_FILE]' -r -F
complete -c spoolmq -n "__fish_spoolmq_using_subcommand man" -l json -d 'Print JSON, one object per line'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand man" -s h -l help -d 'Print help'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "push" -d 'Add messages to a queue (each BODY, each stdin line, or all of stdin)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "pop" -d 'Lease ready messages, oldest first'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "ack" -d 'Delete leased messages: their work is done'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "nack" -d 'Give leased messages back for another attempt'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "extend" -d 'Make a lease end later, for long work'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "retry" -d 'Move dead letters back to ready, or into another queue'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "stats" -d 'Show counters per queue'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "exec" -d 'Pop a message and run a command on it; ack on success, nack on failure'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "list" -d 'List the queues in the spool'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "peek" -d 'Show ready messages without leasing them (--dead: dead letters, with their last failure)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "inspect" -d 'Show everything about one message: state, attempts, times, its last failure'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "purge" -d 'Delete every ready and delayed message (or, with --dead, every dead letter)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "fsck" -d 'Check every record and the index; --repair fixes what it finds'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "export" -d 'Write every message that holds a body as JSON lines (a backup, or to move a queue)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "import" -d 'Push messages written by export back into a queue (one fsync)'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "doctor" -d 'Check that the spool\'s file system keeps spoolmq\'s promises'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "init" -d 'Create the spool, or with --group share it with a group'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "keygen" -d 'Make a new random encryption key, for --key-file'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "migrate" -d 'Convert the spool to another store, keeping every message and its state'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "bench" -d 'Measure push throughput and push-to-pop latency on a scratch queue'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "bench-worker" -d '(internal) a producer or consumer process of `spoolmq bench`'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "man" -d 'Print the man page (roff), of spoolmq or of one command'
complete -c spoolmq -n "__fish_spoolmq_using_subcommand help; and not __fish_seen_subcommand_from push pop ack nack extend retry stats exec list peek inspect purge fsck export import doctor init keygen migrate bench bench-worker completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
