-- indexes: create/drop, unique, partial (WHERE), expression lower(email), multi-column, INCLUDE, DESC NULLS FIRST, changed definition under same name, index comment
-- @common
CREATE SCHEMA app;
CREATE TABLE app.users (id int PRIMARY KEY, email text NOT NULL, name text, org_id int, active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL DEFAULT '2024-01-01');
INSERT INTO app.users (id, email, name, org_id, active) VALUES (1, 'Ann@X.io', 'Ann', 1, true), (2, 'bob@x.io', 'Bob', 1, false), (3, 'cy@y.io', NULL, 2, true);
-- @base
CREATE INDEX users_name_idx ON app.users (name);
CREATE INDEX users_org_idx ON app.users (org_id);
CREATE INDEX users_email_idx ON app.users (email);
CREATE INDEX users_created_idx ON app.users (created_at);
-- @target
CREATE UNIQUE INDEX users_lower_email_key ON app.users (lower(email));
CREATE INDEX users_org_idx ON app.users (org_id, created_at DESC NULLS FIRST);
CREATE INDEX users_active_org_idx ON app.users (org_id) WHERE active;
CREATE INDEX users_email_incl_idx ON app.users (email) INCLUDE (name, org_id);
CREATE UNIQUE INDEX users_name_org_key ON app.users (org_id, name) NULLS NOT DISTINCT;
CREATE INDEX users_created_idx ON app.users (created_at) WITH (fillfactor = 80);
COMMENT ON INDEX app.users_lower_email_key IS 'case-insensitive uniqueness of e-mail';
