-- Autocrypt (harvest.autocrypt = true): the state Autocrypt Level 1 keeps per
-- address, from the newest header sealgate accepted (DKIM-vouched, addr =
-- From): its key, its prefer-encrypt, and the effective date of the message
-- it came in (the earlier of its Date: and its arrival). A header from an
-- older message does not replace it. Portable SQL (SQLite and PostgreSQL).
CREATE TABLE autocrypt_peer (
    address        TEXT PRIMARY KEY,
    fingerprint    TEXT NOT NULL,
    prefer_encrypt TEXT NOT NULL,   -- 'mutual' | 'nopreference'
    message_date   BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
