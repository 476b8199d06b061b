-- renames: an index and a constraint renamed (same definition: inferred, ALTER … RENAME), a column renamed (not provable: drop + add, flagged)
-- @common
CREATE TABLE public.accounts (id int PRIMARY KEY, email text NOT NULL, tier int CHECK (tier > 0), nick text);
CREATE INDEX accounts_email_idx ON public.accounts (lower(email));
INSERT INTO public.accounts VALUES (1, 'a@x.io', 1, 'a'), (2, 'b@x.io', 2, 'b');
-- @base
-- @target
ALTER INDEX public.accounts_email_idx RENAME TO accounts_email_lower;
ALTER TABLE public.accounts RENAME CONSTRAINT accounts_tier_check TO tier_positive;
ALTER TABLE public.accounts RENAME COLUMN nick TO handle;
