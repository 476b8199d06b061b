-- columns: add/drop columns, type changes int->bigint, varchar(10)->varchar(50), text->integer (needs USING), numeric precision, timestamp->timestamptz
-- @common
CREATE SCHEMA inv;
-- @base
CREATE TABLE inv.products (
  id int PRIMARY KEY,
  sku varchar(10) NOT NULL,
  qty text,
  price numeric(8,2),
  obsolete_flag boolean,
  created timestamp
);
INSERT INTO inv.products VALUES (1, 'A-1', '10', 9.99, true, '2024-01-01 10:00'), (2, 'B-2', '0', 100.5, false, NULL), (3, 'C-3', NULL, NULL, NULL, '2024-02-02');
CREATE TABLE public.counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0, tmp text);
INSERT INTO public.counters VALUES (1, 5, 'x');
-- @target
CREATE TABLE inv.products (
  id bigint PRIMARY KEY,
  sku varchar(50) NOT NULL,
  qty integer,
  price numeric(12,4),
  created timestamptz,
  description text,
  weight_kg real DEFAULT 0
);
INSERT INTO inv.products VALUES (1, 'A-1', 10, 9.99, '2024-01-01 10:00', 'first', 1.5);
CREATE TABLE public.counters (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
ALTER TABLE public.counters ADD COLUMN updated_at timestamptz;
