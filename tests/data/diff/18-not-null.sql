-- NOT NULL: set NOT NULL on columns with data (no NULLs), drop NOT NULL, combined with a default change
-- @common
CREATE TABLE public.customers (id int PRIMARY KEY, email text NOT NULL, phone text, name text, country text);
INSERT INTO public.customers VALUES (1, 'a@x.io', '123', 'Ann', 'DE'), (2, 'b@x.io', NULL, 'Bob', 'FR');
CREATE SCHEMA crm;
CREATE TABLE crm.notes (id int PRIMARY KEY, customer_id int, body text NOT NULL);
INSERT INTO crm.notes VALUES (1, 1, 'hi');
-- @base
-- @target
ALTER TABLE public.customers ALTER COLUMN email DROP NOT NULL;
ALTER TABLE public.customers ALTER COLUMN name SET NOT NULL;
ALTER TABLE public.customers ALTER COLUMN country SET DEFAULT 'US', ALTER COLUMN country SET NOT NULL;
ALTER TABLE crm.notes ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE crm.notes ALTER COLUMN body DROP NOT NULL;
