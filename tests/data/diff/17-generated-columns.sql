-- generated stored columns: add one via ALTER TABLE ADD COLUMN, a new table with one, DROP EXPRESSION (generated -> plain column)
-- @common
CREATE TABLE public.order_lines (id int PRIMARY KEY, qty int NOT NULL, unit_price numeric(10,2) NOT NULL);
INSERT INTO public.order_lines VALUES (1, 2, 3.50), (2, 1, 10.00);
CREATE TABLE public.people (id int PRIMARY KEY, first text, last text,
  full_name text GENERATED ALWAYS AS (coalesce(first, '') || ' ' || coalesce(last, '')) STORED);
INSERT INTO public.people (id, first, last) VALUES (1, 'Ada', 'Lovelace');
-- @base
-- @target
ALTER TABLE public.order_lines ADD COLUMN line_total numeric(12,2) GENERATED ALWAYS AS (qty * unit_price) STORED;
ALTER TABLE public.people ALTER COLUMN full_name DROP EXPRESSION;
CREATE TABLE public.boxes (id int PRIMARY KEY, w int, h int, area int GENERATED ALWAYS AS (w * h) STORED);
