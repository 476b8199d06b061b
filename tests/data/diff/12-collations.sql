-- collations: create ICU and libc collations, drop one, a column using a collation, a column changing collation, index with collation
-- @common
CREATE SCHEMA i18n;
CREATE TABLE i18n.words (id int PRIMARY KEY, word text NOT NULL, note text);
INSERT INTO i18n.words VALUES (1, 'Äpfel', 'n1'), (2, 'Zebra', 'n2'), (3, 'apfel', NULL);
-- @base
CREATE COLLATION public.c_fr (provider = icu, locale = 'fr-FR');
CREATE COLLATION i18n.plain FROM "C";
-- @target
CREATE COLLATION public.c_de (provider = icu, locale = 'de-DE');
CREATE COLLATION i18n.plain FROM "C";
CREATE COLLATION i18n.c_utf8 (locale = 'C.UTF-8');
CREATE COLLATION i18n.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
ALTER TABLE i18n.words ALTER COLUMN word TYPE text COLLATE public.c_de;
ALTER TABLE i18n.words ADD COLUMN sort_key text COLLATE i18n.plain;
CREATE INDEX words_note_ci ON i18n.words (note COLLATE i18n.c_utf8);
COMMENT ON COLLATION public.c_de IS 'German (ICU)';
