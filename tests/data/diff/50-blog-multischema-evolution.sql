-- everything at once (blog platform, 3 schemas): schema added/dropped/owned, domain + enum changes, partitioned audit log, cross-schema FKs, matview with index, SRF, procedure, policies, default privileges, triggers, comments, column grants
-- @common
CREATE EXTENSION citext;
CREATE SCHEMA auth;
CREATE SCHEMA content;
CREATE TABLE auth.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, handle citext NOT NULL UNIQUE, pw_hash text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO auth.users (handle, pw_hash) VALUES ('ann', 'x'), ('bob', 'y');
-- @base
CREATE SCHEMA legacy;
CREATE TABLE legacy.imports (id int, raw text);
CREATE TYPE content.post_state AS ENUM ('draft', 'published');
CREATE DOMAIN content.slug AS text CHECK (VALUE ~ '^[a-z0-9-]+$');
CREATE TABLE content.posts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id bigint NOT NULL,
  slug content.slug NOT NULL UNIQUE,
  title varchar(100) NOT NULL,
  body text,
  state content.post_state NOT NULL DEFAULT 'draft',
  views int NOT NULL DEFAULT 0
);
INSERT INTO content.posts (author_id, slug, title, state) VALUES (1, 'hello-world', 'Hello', 'published'), (2, 'draft-1', 'Draft', 'draft');
CREATE TABLE content.comments (id bigint PRIMARY KEY, post_id bigint NOT NULL REFERENCES content.posts (id), author_id bigint, body text NOT NULL);
INSERT INTO content.comments VALUES (1, 1, 2, 'nice');
CREATE VIEW content.published AS SELECT id, slug, title FROM content.posts WHERE state = 'published';
CREATE FUNCTION content.post_count(a bigint) RETURNS int LANGUAGE sql STABLE AS $$ SELECT count(*)::int FROM content.posts WHERE author_id = a $$;
ALTER DEFAULT PRIVILEGES IN SCHEMA content GRANT SELECT ON TABLES TO diff_reader;
-- @target
ALTER SCHEMA content OWNER TO diff_owner;
COMMENT ON SCHEMA content IS 'blog content';
CREATE SCHEMA audit;
CREATE TYPE content.post_state AS ENUM ('draft', 'review', 'published', 'archived');
CREATE DOMAIN content.slug AS text CONSTRAINT slug_format CHECK (VALUE ~ '^[a-z0-9-]+$') CONSTRAINT slug_length CHECK (length(VALUE) <= 80);
CREATE TABLE content.posts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id bigint NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  slug content.slug NOT NULL UNIQUE,
  title varchar(200) NOT NULL,
  body text,
  state content.post_state NOT NULL DEFAULT 'draft',
  views bigint NOT NULL DEFAULT 0,
  published_at timestamptz,
  search tsvector GENERATED ALWAYS AS (to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(body, ''))) STORED
);
CREATE INDEX posts_search_gin ON content.posts USING gin (search);
CREATE INDEX posts_author_state_idx ON content.posts (author_id, state) INCLUDE (title);
CREATE TABLE content.comments (
  id bigint PRIMARY KEY,
  post_id bigint NOT NULL REFERENCES content.posts (id) ON DELETE CASCADE,
  author_id bigint REFERENCES auth.users (id) ON DELETE SET NULL,
  body text NOT NULL,
  parent_id bigint REFERENCES content.comments (id) ON DELETE CASCADE
);
CREATE VIEW content.published WITH (security_barrier) AS SELECT id, slug, title, published_at FROM content.posts WHERE state = 'published';
CREATE MATERIALIZED VIEW content.author_stats AS SELECT author_id, count(*) AS posts, sum(views) AS views FROM content.posts GROUP BY author_id;
CREATE UNIQUE INDEX author_stats_author_key ON content.author_stats (author_id);
CREATE FUNCTION content.post_count(a bigint) RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT count(*) FROM content.posts WHERE author_id = a $$;
CREATE FUNCTION content.search(q text) RETURNS TABLE (id bigint, title varchar, rank real) LANGUAGE sql STABLE
  AS $$ SELECT p.id, p.title, ts_rank(p.search, plainto_tsquery('simple', q)) FROM content.posts p WHERE p.search @@ plainto_tsquery('simple', q) $$;
CREATE PROCEDURE content.refresh_stats() LANGUAGE sql AS $$ REFRESH MATERIALIZED VIEW content.author_stats $$;
CREATE TABLE audit.log (id bigint GENERATED ALWAYS AS IDENTITY, at timestamptz NOT NULL DEFAULT now(), tbl text NOT NULL, op text NOT NULL, row_data jsonb) PARTITION BY RANGE (at);
CREATE TABLE audit.log_2024 PARTITION OF audit.log FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE audit.log_default PARTITION OF audit.log DEFAULT;
CREATE INDEX log_tbl_at_idx ON audit.log (tbl, at);
CREATE FUNCTION audit.record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO audit.log (tbl, op, row_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(coalesce(NEW, OLD)));
  RETURN NULL;
END $$;
CREATE TRIGGER posts_audit AFTER INSERT OR UPDATE OR DELETE ON content.posts FOR EACH ROW EXECUTE FUNCTION audit.record();
ALTER TABLE content.posts ENABLE ROW LEVEL SECURITY;
CREATE POLICY posts_public ON content.posts FOR SELECT TO diff_reader USING (state = 'published');
CREATE POLICY posts_authors ON content.posts FOR ALL TO diff_writer USING (author_id = current_setting('app.uid')::bigint) WITH CHECK (author_id = current_setting('app.uid')::bigint);
ALTER DEFAULT PRIVILEGES IN SCHEMA content GRANT SELECT ON TABLES TO diff_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE diff_owner IN SCHEMA audit GRANT SELECT ON TABLES TO diff_reader;
GRANT USAGE ON SCHEMA content, auth TO diff_reader;
GRANT SELECT (id, handle) ON auth.users TO diff_reader;
GRANT SELECT ON content.published TO PUBLIC;
COMMENT ON COLUMN content.posts.search IS 'full text search vector';
COMMENT ON POLICY posts_public ON content.posts IS 'public can read published posts';
INSERT INTO content.posts (author_id, slug, title, state) VALUES (1, 'hello-world', 'Hello', 'published');
