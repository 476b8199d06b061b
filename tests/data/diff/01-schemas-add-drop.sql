-- schemas: add a schema (with comment and a table), drop a schema (with contents)
-- @common
CREATE SCHEMA app;
CREATE TABLE app.settings (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO app.settings VALUES ('theme', 'dark'), ('lang', 'en');
-- @base
CREATE SCHEMA legacy;
COMMENT ON SCHEMA legacy IS 'old stuff, to be removed';
CREATE TABLE legacy.old_settings (k text, v text);
INSERT INTO legacy.old_settings VALUES ('x', 'y');
CREATE VIEW legacy.settings_v AS SELECT key, value FROM app.settings;
-- @target
CREATE SCHEMA reporting;
COMMENT ON SCHEMA reporting IS 'reporting objects';
CREATE TABLE reporting.daily_stats (day date PRIMARY KEY, hits bigint NOT NULL DEFAULT 0);
CREATE SCHEMA empty_ns;
