-- indexes: BASE has an INVALID unique index (failed CREATE UNIQUE INDEX CONCURRENTLY on duplicates); TARGET lacks it and has a plain valid index instead
-- @skip reverse: an INVALID index cannot be made by DDL, and the rows hold the duplicates that made it so
-- @common
CREATE TABLE public.signups (id int PRIMARY KEY, email text NOT NULL, source text);
INSERT INTO public.signups VALUES (1, 'a@x.io', 'web'), (2, 'a@x.io', 'app'), (3, 'b@x.io', 'web');
-- @base
CREATE INDEX signups_source_idx ON public.signups (source);
-- @expect-error
CREATE UNIQUE INDEX CONCURRENTLY signups_email_key ON public.signups (email);
-- @target
CREATE INDEX signups_source_idx ON public.signups (source);
CREATE INDEX signups_email_idx ON public.signups (email);
