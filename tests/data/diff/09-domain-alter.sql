-- domains: change default, set/drop NOT NULL, add/drop/change CHECK constraints on domains used by columns with data
-- @common
CREATE SCHEMA dom;
-- @base
CREATE DOMAIN dom.qty AS integer DEFAULT 0 CONSTRAINT qty_nonneg CHECK (VALUE >= 0);
CREATE DOMAIN dom.code AS varchar(20);
CREATE DOMAIN dom.label AS text NOT NULL DEFAULT 'none';
CREATE DOMAIN dom.score AS numeric CONSTRAINT score_range CHECK (VALUE BETWEEN 0 AND 10);
CREATE TABLE dom.stock (id int PRIMARY KEY, q dom.qty, c dom.code, l dom.label, s dom.score);
INSERT INTO dom.stock VALUES (1, 5, 'ABC', 'x', 3), (2, 0, 'DEF', 'y', 9.5);
-- @target
CREATE DOMAIN dom.qty AS integer DEFAULT 1 CONSTRAINT qty_nonneg CHECK (VALUE >= 0) CONSTRAINT qty_max CHECK (VALUE < 1000000);
CREATE DOMAIN dom.code AS varchar(20) NOT NULL CONSTRAINT code_upper CHECK (VALUE = upper(VALUE));
CREATE DOMAIN dom.label AS text;
CREATE DOMAIN dom.score AS numeric CONSTRAINT score_range CHECK (VALUE BETWEEN 0 AND 100);
CREATE TABLE dom.stock (id int PRIMARY KEY, q dom.qty, c dom.code, l dom.label, s dom.score);
INSERT INTO dom.stock VALUES (1, 5, 'ABC', 'x', 3), (2, 0, 'DEF', 'y', 9.5);
COMMENT ON DOMAIN dom.code IS 'upper-case product code';
