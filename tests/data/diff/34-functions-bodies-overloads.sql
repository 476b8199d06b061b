-- functions: SQL, plpgsql and SQL-standard BEGIN ATOMIC bodies; create/drop; change body; overloads (same name, different args; one overload dropped, one added); default args; OUT params
-- @common
CREATE SCHEMA fn;
CREATE TABLE public.nums (n int PRIMARY KEY);
INSERT INTO public.nums VALUES (1), (2), (3);
-- @base
CREATE FUNCTION fn.add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION fn.add(a numeric, b numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION fn.greet(name text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN 'Hello ' || name; END $$;
CREATE FUNCTION fn.total() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT sum(n) FROM public.nums; END;
CREATE FUNCTION fn.old_helper() RETURNS void LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
CREATE FUNCTION fn.clamp(x int, lo int DEFAULT 0, hi int DEFAULT 100) RETURNS int LANGUAGE sql IMMUTABLE RETURN greatest(lo, least(hi, x));
-- @target
CREATE FUNCTION fn.add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION fn.add(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;
CREATE FUNCTION fn.add(a int, b int, c int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT a + b + c $$;
CREATE FUNCTION fn.greet(name text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  IF name IS NULL THEN RETURN 'Hello stranger'; END IF;
  RETURN 'Hello, ' || name || '!';
END $$;
CREATE FUNCTION fn.total() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT coalesce(sum(n), 0) FROM public.nums WHERE n > 0; END;
CREATE FUNCTION fn.clamp(x int, lo int DEFAULT 1, hi int DEFAULT 10) RETURNS int LANGUAGE sql IMMUTABLE RETURN greatest(lo, least(hi, x));
CREATE FUNCTION fn.min_max(OUT lo int, OUT hi int) LANGUAGE sql STABLE AS $$ SELECT min(n), max(n) FROM public.nums $$;
CREATE FUNCTION public.square(x double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE BEGIN ATOMIC SELECT x * x; END;
