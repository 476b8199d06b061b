-- column defaults: add, change, drop; defaults using now()/CURRENT_TIMESTAMP and user SQL functions (immutable and volatile)
-- @common
CREATE FUNCTION public.default_region() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'eu' $$;
CREATE FUNCTION public.next_code() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'C' || floor(random()*1000)::int $$;
-- @base
CREATE TABLE public.events (
  id int PRIMARY KEY,
  kind text,
  region text DEFAULT 'us',
  prio int DEFAULT 5,
  created_at timestamptz DEFAULT now(),
  code text
);
INSERT INTO public.events (id, kind) VALUES (1, 'a'), (2, 'b');
-- @target
CREATE TABLE public.events (
  id int PRIMARY KEY,
  kind text DEFAULT 'generic',
  region text DEFAULT public.default_region(),
  prio int,
  created_at timestamptz DEFAULT CURRENT_TIMESTAMP,
  code text DEFAULT public.next_code()
);
INSERT INTO public.events (id, kind) VALUES (1, 'a');
