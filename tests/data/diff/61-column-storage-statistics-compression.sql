-- columns: STORAGE, STATISTICS and COMPRESSION set, changed and reset, on a table with rows and on a new table
-- @common
CREATE SCHEMA cs;
CREATE TABLE cs.docs (id int PRIMARY KEY, body text, meta jsonb, score int);
INSERT INTO cs.docs VALUES (1, 'hello', '{}', 3);
-- @base
ALTER TABLE cs.docs ALTER COLUMN meta SET STORAGE MAIN;
ALTER TABLE cs.docs ALTER COLUMN score SET STATISTICS 50;
-- @target
ALTER TABLE cs.docs ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE cs.docs ALTER COLUMN body SET COMPRESSION lz4;
ALTER TABLE cs.docs ALTER COLUMN score SET STATISTICS 500;
CREATE TABLE cs.blobs (id int, data bytea COMPRESSION pglz);
ALTER TABLE cs.blobs ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE cs.blobs ALTER COLUMN id SET STATISTICS 10;
