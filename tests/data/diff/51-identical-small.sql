-- identical: BASE and TARGET are the same small schema (table, index, view, function); the diff must be empty
-- @common
CREATE TABLE public.kv (k text PRIMARY KEY, v text, updated_at timestamptz DEFAULT now());
CREATE INDEX kv_updated_idx ON public.kv (updated_at);
CREATE VIEW public.kv_recent AS SELECT k, v FROM public.kv WHERE updated_at > now() - interval '1 day';
CREATE FUNCTION public.kv_get(key text) RETURNS text LANGUAGE sql STABLE AS $$ SELECT v FROM public.kv WHERE k = key $$;
INSERT INTO public.kv (k, v) VALUES ('a', '1');
-- @base
-- @target
