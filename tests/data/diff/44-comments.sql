-- comments: add/change/drop on table, column, view, materialized view, function, procedure, index, constraint, type, domain, schema, sequence, trigger, policy
-- @common
CREATE SCHEMA doc;
CREATE TYPE doc.kind AS ENUM ('a', 'b');
CREATE DOMAIN doc.short_text AS varchar(20);
CREATE TABLE doc.items (id int PRIMARY KEY, kind doc.kind, title doc.short_text, CONSTRAINT items_title_chk CHECK (title <> ''));
CREATE INDEX items_kind_idx ON doc.items (kind);
CREATE SEQUENCE doc.item_seq;
CREATE VIEW doc.items_v AS SELECT id, title FROM doc.items;
CREATE MATERIALIZED VIEW doc.items_mv AS SELECT kind, count(*) AS n FROM doc.items GROUP BY kind;
CREATE FUNCTION doc.trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER items_trg BEFORE INSERT ON doc.items FOR EACH ROW EXECUTE FUNCTION doc.trg();
CREATE PROCEDURE doc.noop() LANGUAGE sql AS $$ SELECT 1 $$;
ALTER TABLE doc.items ENABLE ROW LEVEL SECURITY;
CREATE POLICY items_pol ON doc.items USING (true);
COMMENT ON TABLE doc.items IS 'old table comment';
COMMENT ON COLUMN doc.items.kind IS 'old column comment';
COMMENT ON INDEX doc.items_kind_idx IS 'to be removed';
-- @base
-- @target
COMMENT ON SCHEMA doc IS 'documented schema';
COMMENT ON TABLE doc.items IS 'Items, with a ''quoted'' word';
COMMENT ON COLUMN doc.items.kind IS NULL;
COMMENT ON COLUMN doc.items.title IS 'display title';
COMMENT ON INDEX doc.items_kind_idx IS NULL;
COMMENT ON CONSTRAINT items_title_chk ON doc.items IS 'no empty titles';
COMMENT ON CONSTRAINT items_pkey ON doc.items IS 'primary key';
COMMENT ON TYPE doc.kind IS 'item kind';
COMMENT ON DOMAIN doc.short_text IS 'max 20 chars';
COMMENT ON SEQUENCE doc.item_seq IS 'item ids';
COMMENT ON VIEW doc.items_v IS 'items view';
COMMENT ON COLUMN doc.items_v.title IS 'view column';
COMMENT ON MATERIALIZED VIEW doc.items_mv IS 'counts per kind';
COMMENT ON FUNCTION doc.trg() IS 'trigger fn';
COMMENT ON PROCEDURE doc.noop() IS 'does nothing';
COMMENT ON TRIGGER items_trg ON doc.items IS 'before insert';
COMMENT ON POLICY items_pol ON doc.items IS 'allow all';
COMMENT ON INDEX doc.items_pkey IS 'pk index';
