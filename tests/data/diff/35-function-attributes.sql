-- function attributes: SECURITY DEFINER on/off, volatility, STRICT, COST/ROWS, PARALLEL, LEAKPROOF, SET search_path and other SET options, owner, comment
-- @common
CREATE SCHEMA sec;
CREATE TABLE sec.audit (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, msg text);
-- @base
CREATE FUNCTION sec.log(m text) RETURNS void LANGUAGE sql AS $$ INSERT INTO sec.audit (msg) VALUES (m) $$;
CREATE FUNCTION sec.now_utc() RETURNS timestamp LANGUAGE sql VOLATILE AS $$ SELECT now() AT TIME ZONE 'utc' $$;
CREATE FUNCTION sec.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(trim(t)) $$;
CREATE FUNCTION sec.expensive(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN i * 2; END $$;
CREATE FUNCTION sec.gen(n int) RETURNS SETOF int LANGUAGE sql AS $$ SELECT generate_series(1, n) $$;
CREATE FUNCTION sec.admin_only() RETURNS int LANGUAGE sql SECURITY DEFINER SET search_path = sec, pg_temp AS $$ SELECT count(*)::int FROM sec.audit $$;
-- @target
CREATE FUNCTION sec.log(m text) RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ INSERT INTO sec.audit (msg) VALUES (m) $$;
CREATE FUNCTION sec.now_utc() RETURNS timestamp LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT now() AT TIME ZONE 'utc' $$;
CREATE FUNCTION sec.norm(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT LEAKPROOF AS $$ SELECT lower(trim(t)) $$;
CREATE FUNCTION sec.expensive(i int) RETURNS int LANGUAGE plpgsql COST 1000 SET work_mem = '64MB' AS $$ BEGIN RETURN i * 2; END $$;
CREATE FUNCTION sec.gen(n int) RETURNS SETOF int LANGUAGE sql ROWS 50 AS $$ SELECT generate_series(1, n) $$;
CREATE FUNCTION sec.admin_only() RETURNS int LANGUAGE sql SET search_path = sec, public AS $$ SELECT count(*)::int FROM sec.audit $$;
ALTER FUNCTION sec.admin_only() OWNER TO diff_owner;
COMMENT ON FUNCTION sec.log(text) IS 'append to audit log';
