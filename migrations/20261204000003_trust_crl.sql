-- The CRL store (crates/trust): certificate revocation lists, downloaded from
-- the distribution points of the stored certificates or imported. Whether a
-- CRL is valid (its signature verifies against its issuer, which has a path
-- to a root, and it is not past its nextUpdate) is computed when it is used
-- or shown, never stored: an invalid CRL is kept and shown as such.
-- Portable SQL; times in Unix seconds.
CREATE TABLE trust_crl (
    sha256      TEXT PRIMARY KEY,     -- of the DER, upper-case hex
    issuer      TEXT NOT NULL,        -- one line, "CN=..., O=..."
    issuer_key  TEXT NOT NULL,        -- hex of the DER of the issuer name (matching)
    this_update BIGINT NOT NULL,
    next_update BIGINT,               -- NULL: none given
    crl_number  TEXT,                 -- hex; NULL: no CRLNumber extension
    revoked     BIGINT NOT NULL,      -- entries listed
    source      TEXT NOT NULL,        -- the URL it came from, or 'import'
    der         BYTEA NOT NULL,
    fetched_at  BIGINT NOT NULL
);
CREATE INDEX trust_crl_issuer ON trust_crl (issuer_key);
