-- grants: table privileges grant/revoke, column-level GRANT SELECT (a, b) / UPDATE (col), WITH GRANT OPTION, sequence USAGE/SELECT, view grants, grants to PUBLIC
-- @common
CREATE SCHEMA app;
CREATE TABLE app.customers (id int PRIMARY KEY, name text, email text, ssn text);
CREATE SEQUENCE app.customer_seq;
CREATE VIEW app.customer_names AS SELECT id, name FROM app.customers;
CREATE TABLE public.lookup (code text PRIMARY KEY, label text);
GRANT USAGE ON SCHEMA app TO diff_reader, diff_writer;
-- @base
GRANT SELECT ON app.customers TO diff_reader;
GRANT INSERT, UPDATE, DELETE ON app.customers TO diff_writer;
GRANT ALL ON app.customer_seq TO diff_writer;
GRANT SELECT ON public.lookup TO PUBLIC;
GRANT TRUNCATE ON public.lookup TO diff_writer;
-- @target
GRANT SELECT (id, name, email) ON app.customers TO diff_reader;
GRANT INSERT, UPDATE (name, email) ON app.customers TO diff_writer;
GRANT SELECT ON app.customers TO diff_writer WITH GRANT OPTION;
GRANT USAGE, SELECT ON SEQUENCE app.customer_seq TO diff_writer;
GRANT SELECT ON app.customer_seq TO diff_reader;
GRANT SELECT ON app.customer_names TO diff_reader WITH GRANT OPTION;
GRANT SELECT, REFERENCES ON public.lookup TO diff_reader;
REVOKE ALL ON public.lookup FROM PUBLIC;
