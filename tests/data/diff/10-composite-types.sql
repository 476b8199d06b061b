-- composite types: create/drop, add attribute, drop attribute, change attribute type (types not used by tables)
-- @common
CREATE SCHEMA geo;
-- @base
CREATE TYPE geo.point3 AS (x float8, y float8, z float8);
CREATE TYPE geo.address AS (street text, city text, zip integer, legacy_code text);
CREATE TYPE public.money_amount AS (amount numeric, currency char(3));
CREATE TYPE public.obsolete_pair AS (a int, b int);
-- @target
CREATE TYPE geo.point3 AS (x float8, y float8, z float8, m float8);
CREATE TYPE geo.address AS (street text, city text, zip text);
CREATE TYPE public.money_amount AS (amount numeric(14,2), currency char(3));
CREATE TYPE public.kv AS (key text, value jsonb);
COMMENT ON TYPE public.kv IS 'key/value pair';
