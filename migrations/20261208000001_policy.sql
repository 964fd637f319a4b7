-- The policy kept in the store (crates/policy, `sealgate policy set`): one row
-- per scope and setting, over the TOML file's value for the same scope and
-- setting. scope: 'global', a domain ('example.com', '*.example.com') or an
-- address; name: the setting ('mode', 'methods', ...); value: JSON.
-- policy_version counts changes, so that every instance sharing the store
-- notices one by reading a single row. Portable SQL.
CREATE TABLE policy_setting (
    scope      TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE policy_version (
    id      BIGINT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO policy_version (id, version) VALUES (1, 0);
