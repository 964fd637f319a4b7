-- Answers of remote key sources (LDAP, key servers, WKD), per source and address.
-- Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE lookup_cache (
    source       TEXT NOT NULL,      -- source name, e.g. 'ldap:corp', 'keyserver:hkps://keys.example.org', 'wkd'
    address      TEXT NOT NULL,      -- lower-cased mail address
    location     TEXT NOT NULL,      -- digest of the source's configuration when fetched
    keys         TEXT NOT NULL,      -- JSON array of armored OpenPGP / PEM certificates; [] = nothing found
    refreshed_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,    -- 0 = marked stale (`sealgate cache expire`)
    PRIMARY KEY (source, address)
);
CREATE INDEX lookup_cache_address ON lookup_cache (address);
