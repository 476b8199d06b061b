-- range types: create/drop custom range types (float8 with subtype_diff, one in another schema), a column and GiST index on a range
-- @common
CREATE SCHEMA sched;
CREATE TABLE sched.slots (id int PRIMARY KEY, label text NOT NULL);
INSERT INTO sched.slots VALUES (1, 'morning'), (2, 'evening');
-- @base
CREATE TYPE public.numrange2 AS RANGE (subtype = numeric);
CREATE TYPE sched.oldrange AS RANGE (subtype = int4);
-- @target
CREATE TYPE public.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE TYPE sched.timerange AS RANGE (subtype = time);
ALTER TABLE sched.slots ADD COLUMN span public.floatrange;
CREATE INDEX slots_span_gist ON sched.slots USING gist (span);
COMMENT ON TYPE public.floatrange IS 'range of double precision';
