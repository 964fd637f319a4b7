-- Manual certificate selection (crates/trust): certificates an admin chose for
-- a user (lower-case address) or a domain ('@' and the lower-case domain),
-- used for that recipient while they are valid, whether or not they name the
-- address. Automatic selection (certificates that name the address) is not
-- stored. Portable SQL; times in Unix seconds.
CREATE TABLE trust_selection (
    target   TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (target, sha256)
);
