-- domains: create (with CHECK, NOT NULL, default) and drop; a column switching to a domain type; domain in other schema
-- @common
CREATE SCHEMA types;
CREATE TABLE public.contacts (id int PRIMARY KEY, email text NOT NULL, zip text);
INSERT INTO public.contacts VALUES (1, 'x@example.com', '12345'), (2, 'y@example.org', '54321');
-- @base
CREATE DOMAIN public.old_zip AS text CHECK (length(VALUE) <= 10);
CREATE DOMAIN types.percent AS numeric(5,2);
-- @target
CREATE DOMAIN public.email_addr AS text NOT NULL CHECK (VALUE LIKE '%@%');
CREATE DOMAIN types.positive_int AS integer DEFAULT 1 CONSTRAINT positive_int_chk CHECK (VALUE > 0);
CREATE DOMAIN types.zip_code AS text COLLATE "C" CHECK (VALUE ~ '^[0-9]{5}$');
ALTER TABLE public.contacts ALTER COLUMN email TYPE public.email_addr;
ALTER TABLE public.contacts ALTER COLUMN zip TYPE types.zip_code;
