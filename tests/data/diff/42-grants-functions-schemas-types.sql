-- grants: REVOKE EXECUTE FROM PUBLIC on functions/procedures, GRANT EXECUTE to roles, schema USAGE/CREATE (with grant option), type/domain USAGE revoke/grant
-- @common
CREATE SCHEMA api;
CREATE SCHEMA internal;
CREATE TYPE api.status AS ENUM ('on', 'off');
CREATE DOMAIN api.posint AS int CHECK (VALUE > 0);
CREATE FUNCTION api.ping() RETURNS text LANGUAGE sql AS $$ SELECT 'pong' $$;
CREATE FUNCTION internal.wipe() RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE PROCEDURE api.do_work(n int) LANGUAGE sql AS $$ SELECT n $$;
-- @base
GRANT USAGE ON SCHEMA internal TO diff_reader;
GRANT EXECUTE ON FUNCTION internal.wipe() TO diff_reader;
-- @target
GRANT USAGE ON SCHEMA api TO diff_reader, diff_writer;
GRANT USAGE, CREATE ON SCHEMA api TO diff_owner WITH GRANT OPTION;
REVOKE EXECUTE ON FUNCTION internal.wipe() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION api.ping() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.ping() TO diff_reader;
REVOKE EXECUTE ON PROCEDURE api.do_work(int) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE api.do_work(int) TO diff_writer WITH GRANT OPTION;
REVOKE USAGE ON TYPE api.status FROM PUBLIC;
GRANT USAGE ON TYPE api.status TO diff_reader;
REVOKE USAGE ON DOMAIN api.posint FROM PUBLIC;
GRANT USAGE ON DOMAIN api.posint TO diff_writer;
