-- The admin HTTP API and pages (crates/web). Portable SQL. Times are Unix
-- seconds.

-- Local admin accounts; passwords hashed as SMTP AUTH's are
-- ($pbkdf2-sha256$...).
CREATE TABLE web_admin (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- API tokens: only the SHA-256 of the secret is kept. A revoked token stays
-- listed with its revocation time.
CREATE TABLE web_token (
    id         TEXT PRIMARY KEY,   -- public part, shown in lists
    name       TEXT NOT NULL,      -- what it is for
    admin      TEXT NOT NULL,      -- the admin it acts as
    sha256     TEXT NOT NULL,      -- of the whole token, hex
    created_at BIGINT NOT NULL,
    last_used  BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX web_token_sha256 ON web_token (sha256);
