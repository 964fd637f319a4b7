-- Server-side sessions of the admin API and pages (crates/web), shared by
-- every instance. Only the SHA-256 of the session id (the cookie) is kept.
CREATE TABLE web_session (
    id_sha256  TEXT PRIMARY KEY,
    admin      TEXT NOT NULL,
    csrf       TEXT NOT NULL,      -- the session's CSRF token
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_session_expires ON web_session (expires_at);
