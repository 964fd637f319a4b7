-- The durable queue (crates/queue). Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix milliseconds (BIGINT). Booleans are BIGINT 0/1.
--
-- A message is what one SMTP transaction handed over; it is stored as the
-- copies sealgate built from it (one per group of recipients: encrypted for
-- their keys, or the original bytes for plain recipients), never as the
-- plaintext original of an encrypted recipient. A message row exists only
-- once every copy of it is written: copies without one are a transaction cut
-- short (a crash during DATA) and are removed at start.

CREATE TABLE queue_message (
    id           TEXT PRIMARY KEY,   -- queue id, as in the 250 reply, the logs and the audit table
    received_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,    -- received_at + queue.max_age: a recipient still deferred then fails
    sender       TEXT NOT NULL,      -- RFC 5321 path; '' = the null sender (never gets a DSN)
    envid        TEXT,               -- DSN ENVID (RFC 3461), xtext-decoded
    ret          TEXT,               -- 'FULL' | 'HDRS' | NULL
    flags        BIGINT NOT NULL,    -- 1: BODY=8BITMIME, 2: SMTPUTF8
    client       TEXT NOT NULL,      -- peer address and HELO name, for Received-From-MTA
    kind         TEXT NOT NULL       -- 'mail' | 'dsn' (a report sealgate generated)
);

CREATE TABLE queue_copy (
    id              TEXT PRIMARY KEY, -- '<message id>.<n>'
    message_id      TEXT NOT NULL,    -- queue_message.id (no FK: copies are written first)
    method          TEXT NOT NULL,    -- 'pgp' | 'smime' | 'plain' | 'pass-through' | 'dsn'
    size            BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    active          BIGINT NOT NULL,  -- 1 once the message is complete and while a recipient waits
    next_attempt_at BIGINT NOT NULL,  -- earliest next attempt of its waiting recipients
    delay_dsn_at    BIGINT,           -- when a delay DSN is due (NULL: off, or sent)
    lease_owner     TEXT,             -- instance delivering it now
    lease_until     BIGINT NOT NULL DEFAULT 0,
    lease_token     BIGINT NOT NULL DEFAULT 0 -- fencing token: raised by every claim
);
CREATE INDEX queue_copy_due ON queue_copy (active, next_attempt_at);
CREATE INDEX queue_copy_message ON queue_copy (message_id);

-- The bytes of a copy, in chunks of at most 1 MiB.
CREATE TABLE queue_chunk (
    copy_id TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (copy_id, seq)
);

CREATE TABLE queue_rcpt (
    copy_id         TEXT NOT NULL,
    seq             BIGINT NOT NULL,  -- position in the original envelope
    address         TEXT NOT NULL,
    orcpt           TEXT,             -- DSN ORCPT, as given ('rfc822;a@b')
    notify          TEXT,             -- DSN NOTIFY ('NEVER' or a list of SUCCESS,FAILURE,DELAY); NULL = default
    state           TEXT NOT NULL,    -- 'queued' | 'deferred' | 'delivered' | 'failed' | 'held'
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_error      TEXT,             -- the last failure, for `queue show` and the DSN
    PRIMARY KEY (copy_id, seq)
);
CREATE INDEX queue_rcpt_state ON queue_rcpt (state);
