-- tables: create, drop, UNLOGGED->LOGGED and LOGGED->UNLOGGED, storage params (fillfactor add/change/reset, autovacuum), table comment
-- @common
CREATE SCHEMA store;
-- @base
CREATE TABLE store.cache (k text PRIMARY KEY, v bytea);
CREATE UNLOGGED TABLE store.sessions (id uuid PRIMARY KEY, data jsonb);
CREATE TABLE store.audit (id bigint PRIMARY KEY, msg text);
CREATE TABLE store.hot (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0) WITH (fillfactor = 90);
CREATE TABLE store.cold (id int PRIMARY KEY) WITH (fillfactor = 50, autovacuum_enabled = false);
CREATE TABLE public.to_be_dropped (id int, payload text);
INSERT INTO store.cache VALUES ('a', '\x01');
INSERT INTO store.sessions VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{}');
INSERT INTO store.hot VALUES (1, 10), (2, 20);
-- @target
CREATE UNLOGGED TABLE store.cache (k text PRIMARY KEY, v bytea);
CREATE TABLE store.sessions (id uuid PRIMARY KEY, data jsonb);
CREATE TABLE store.audit (id bigint PRIMARY KEY, msg text) WITH (fillfactor = 100);
CREATE TABLE store.hot (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0) WITH (fillfactor = 70);
CREATE TABLE store.cold (id int PRIMARY KEY);
CREATE TABLE public.brand_new (id int PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), note text);
COMMENT ON TABLE public.brand_new IS 'a new table';
CREATE UNLOGGED TABLE store.scratch (x int);
