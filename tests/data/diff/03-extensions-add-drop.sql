-- extensions: add pg_trgm, citext, btree_gist (one in a non-public schema); drop pgcrypto and uuid-ossp; objects using them
-- @common
CREATE SCHEMA ext;
CREATE TABLE public.users (id int PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO public.users VALUES (1, 'a@example.com', 'Ann'), (2, 'b@example.com', 'Bob');
-- @base
CREATE EXTENSION pgcrypto;
CREATE EXTENSION "uuid-ossp" WITH SCHEMA ext;
CREATE TABLE public.tokens (id uuid PRIMARY KEY DEFAULT ext.uuid_generate_v4(), user_id int, secret text DEFAULT encode(gen_random_bytes(16), 'hex'));
-- @target
CREATE EXTENSION pg_trgm;
CREATE EXTENSION citext WITH SCHEMA ext;
CREATE EXTENSION btree_gist;
CREATE TABLE public.tags (name ext.citext PRIMARY KEY);
CREATE INDEX users_name_trgm ON public.users USING gin (name gin_trgm_ops);
CREATE INDEX users_id_email_gist ON public.users USING gist (id, email);
