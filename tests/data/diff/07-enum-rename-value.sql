-- enums: rename a value (same count, one label differs at one position) for an enum used by a column and a CHECK
-- @common
CREATE TABLE public.accounts (id int PRIMARY KEY);
INSERT INTO public.accounts VALUES (1), (2), (3);
-- @base
CREATE TYPE public.color AS ENUM ('red', 'grene', 'blue');
CREATE TYPE public.plan AS ENUM ('free', 'pro', 'enterprise');
ALTER TABLE public.accounts ADD COLUMN plan public.plan NOT NULL DEFAULT 'free';
ALTER TABLE public.accounts ADD CONSTRAINT accounts_plan_chk CHECK (plan <> 'enterprise' OR id > 0);
-- @target
CREATE TYPE public.color AS ENUM ('red', 'green', 'blue');
CREATE TYPE public.plan AS ENUM ('free', 'premium', 'enterprise');
ALTER TABLE public.accounts ADD COLUMN plan public.plan NOT NULL DEFAULT 'free';
ALTER TABLE public.accounts ADD CONSTRAINT accounts_plan_chk CHECK (plan <> 'enterprise' OR id > 0);
