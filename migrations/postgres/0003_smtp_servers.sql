-- SMTP servers Herald can send through (contract §3, §5): an org's own
-- configuration (Leegality notification-config; scope_id = org id) or the
-- instance-wide settings (Dbvisit email-settings; scope_id = instance id).
-- password is AEAD ciphertext bound to (scope_id, id); never plaintext.
CREATE TABLE smtp_servers (
    id                   TEXT    PRIMARY KEY,
    scope_id             TEXT    NOT NULL UNIQUE,
    enabled              BOOLEAN NOT NULL,
    host                 TEXT    NOT NULL,
    port                 BIGINT  NOT NULL,
    security             TEXT    NOT NULL,
    accept_invalid_certs BOOLEAN NOT NULL,
    username             TEXT,
    password             BYTEA,
    from_email           TEXT,
    from_name            TEXT,
    reply_to             TEXT,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);

-- Written with the secret key on first start; a different key is refused.
ALTER TABLE instance ADD COLUMN key_check BYTEA;
