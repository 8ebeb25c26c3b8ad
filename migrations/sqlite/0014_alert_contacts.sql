-- Alert contacts (issue 18): the addresses an org's alerts are mailed to,
-- through the instance's providers, when an alert opens and when it
-- resolves. `emails` is a JSON array of addresses (at most 20).
CREATE TABLE alert_contacts (
    org_id     TEXT   PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    emails     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
