-- dependency: a table referenced by FKs from two tables (in two schemas) is dropped; the referencing tables keep existing without the FK (one also drops its FK column); a view on the dropped table is dropped too
-- @skip reverse: the dropped table's rows are gone; the re-created foreign keys cannot validate against an empty table
-- @common
CREATE SCHEMA crm;
CREATE TABLE public.orders (id int PRIMARY KEY, note text);
CREATE TABLE crm.tickets (id int PRIMARY KEY, subject text NOT NULL);
-- @base
CREATE TABLE public.regions (id int PRIMARY KEY, name text NOT NULL UNIQUE);
INSERT INTO public.regions VALUES (1, 'north'), (2, 'south');
ALTER TABLE public.orders ADD COLUMN region_id int REFERENCES public.regions (id);
ALTER TABLE crm.tickets ADD COLUMN region_id int CONSTRAINT tickets_region_fk REFERENCES public.regions (id) ON DELETE CASCADE;
INSERT INTO public.orders VALUES (1, 'a', 1), (2, 'b', 2);
INSERT INTO crm.tickets VALUES (1, 's', 1);
CREATE VIEW public.region_names AS SELECT name FROM public.regions;
-- @target
ALTER TABLE public.orders ADD COLUMN region_id int;
INSERT INTO public.orders VALUES (1, 'a', 1), (2, 'b', 2);
INSERT INTO crm.tickets VALUES (1, 's');
