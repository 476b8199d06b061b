-- extensions: hstore version update 1.7 -> 1.8 (plus a table gaining an hstore column with a GiST index)
-- @skip reverse: hstore ships no downgrade path from 1.8 to 1.7
-- @common
CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.items VALUES (1, 'one'), (2, 'two');
-- @base
CREATE EXTENSION hstore VERSION '1.7';
-- @target
CREATE EXTENSION hstore VERSION '1.8';
ALTER TABLE public.items ADD COLUMN attrs hstore NOT NULL DEFAULT ''::hstore;
CREATE INDEX items_attrs_gist ON public.items USING gist (attrs);
