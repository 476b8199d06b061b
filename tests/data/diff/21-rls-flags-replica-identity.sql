-- table flags: ENABLE/FORCE/DISABLE ROW LEVEL SECURITY, replica identity FULL / USING INDEX / DEFAULT / NOTHING, fillfactor
-- @common
CREATE TABLE public.docs (id int PRIMARY KEY, owner text NOT NULL, body text);
CREATE TABLE public.secrets (id int PRIMARY KEY, val text);
CREATE TABLE public.ledger (id int PRIMARY KEY, code text NOT NULL, amount numeric);
CREATE UNIQUE INDEX ledger_code_key ON public.ledger (code);
CREATE TABLE public.stream (id int PRIMARY KEY, payload text);
INSERT INTO public.ledger VALUES (1, 'A', 1), (2, 'B', 2);
-- @base
ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.secrets FORCE ROW LEVEL SECURITY;
ALTER TABLE public.stream REPLICA IDENTITY FULL;
-- @target
ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.docs FORCE ROW LEVEL SECURITY;
ALTER TABLE public.secrets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.ledger REPLICA IDENTITY USING INDEX ledger_code_key;
ALTER TABLE public.docs REPLICA IDENTITY FULL;
ALTER TABLE public.stream REPLICA IDENTITY DEFAULT;
ALTER TABLE public.secrets REPLICA IDENTITY NOTHING;
ALTER TABLE public.ledger SET (fillfactor = 70);
