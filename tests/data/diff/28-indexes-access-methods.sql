-- indexes: gin (jsonb, pg_trgm, array), gist (range, pg_trgm), brin, hash, spgist; an index on a materialized view; opclass change
-- @common
CREATE EXTENSION pg_trgm;
CREATE TABLE public.documents (id int PRIMARY KEY, title text NOT NULL, body text, meta jsonb, tags text[], valid tstzrange, created_at timestamptz NOT NULL DEFAULT '2024-01-01', addr inet);
INSERT INTO public.documents (id, title, body, meta, tags, valid, addr) VALUES
  (1, 'Hello', 'world', '{"a":1}', '{x,y}', '[2024-01-01,2024-02-01)', '10.0.0.1'),
  (2, 'Bye', 'moon', '{"b":2}', '{z}', NULL, '10.0.0.2');
CREATE MATERIALIZED VIEW public.doc_titles AS SELECT id, lower(title) AS title_lc, created_at FROM public.documents;
-- @base
CREATE INDEX documents_meta_gin ON public.documents USING gin (meta);
CREATE INDEX documents_title_hash ON public.documents USING hash (title);
-- @target
CREATE INDEX documents_meta_gin ON public.documents USING gin (meta jsonb_path_ops);
CREATE INDEX documents_title_trgm ON public.documents USING gin (title gin_trgm_ops);
CREATE INDEX documents_body_trgm_gist ON public.documents USING gist (body gist_trgm_ops);
CREATE INDEX documents_tags_gin ON public.documents USING gin (tags);
CREATE INDEX documents_valid_gist ON public.documents USING gist (valid);
CREATE INDEX documents_created_brin ON public.documents USING brin (created_at) WITH (pages_per_range = 32);
CREATE INDEX documents_body_hash ON public.documents USING hash (body);
CREATE INDEX documents_addr_spgist ON public.documents USING spgist (addr inet_ops);
CREATE UNIQUE INDEX doc_titles_id_key ON public.doc_titles (id);
CREATE INDEX doc_titles_title_idx ON public.doc_titles (title_lc text_pattern_ops);
