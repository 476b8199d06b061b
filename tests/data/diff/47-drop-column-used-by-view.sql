-- dependency: a column used by a view (and by an index, a CHECK and a view-on-view) is dropped; the views change in target to not use it
-- @common
CREATE TABLE public.products (id int PRIMARY KEY, name text NOT NULL, legacy_code text, price numeric NOT NULL DEFAULT 0);
INSERT INTO public.products VALUES (1, 'pen', 'P1', 1.5), (2, 'ink', NULL, 3);
-- @base
CREATE INDEX products_legacy_idx ON public.products (legacy_code);
ALTER TABLE public.products ADD CONSTRAINT products_legacy_chk CHECK (legacy_code IS NULL OR length(legacy_code) < 10);
CREATE VIEW public.product_list AS SELECT id, name, legacy_code, price FROM public.products;
CREATE VIEW public.cheap_products AS SELECT id, name, legacy_code FROM public.product_list WHERE price < 2;
-- @target
ALTER TABLE public.products DROP COLUMN legacy_code;
CREATE VIEW public.product_list AS SELECT id, name, price FROM public.products;
CREATE VIEW public.cheap_products AS SELECT id, name FROM public.product_list WHERE price < 2;
