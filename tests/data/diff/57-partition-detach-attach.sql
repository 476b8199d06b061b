-- partitions: a partition with rows is detached (its columns, constraints and indexes become its own), a table with rows is attached, another becomes the DEFAULT partition; a column added to the parent reaches every partition
-- @common
CREATE SCHEMA pt;
CREATE TABLE pt.events (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL DEFAULT 'x' CHECK (kind <> ''), PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE INDEX events_kind_idx ON pt.events (kind);
CREATE TABLE pt.events_2024 PARTITION OF pt.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE pt.events_2025 PARTITION OF pt.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE pt.events_2026 (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL DEFAULT 'x' CONSTRAINT events_kind_check CHECK (kind <> ''), PRIMARY KEY (id, at));
CREATE TABLE pt.events_other (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL DEFAULT 'x' CONSTRAINT events_kind_check CHECK (kind <> ''), PRIMARY KEY (id, at));
INSERT INTO pt.events VALUES (1, '2024-03-01', 'a'), (2, '2025-03-01', 'b');
INSERT INTO pt.events_2026 VALUES (3, '2026-03-01', 'c');
INSERT INTO pt.events_other VALUES (4, '2030-03-01', 'd');
-- @base
ALTER TABLE pt.events_2026 ADD COLUMN note text;
ALTER TABLE pt.events_other ADD COLUMN note text;
-- @target
ALTER TABLE pt.events DETACH PARTITION pt.events_2025;
ALTER TABLE pt.events_2026 ADD COLUMN note text;
ALTER TABLE pt.events_other ADD COLUMN note text;
ALTER TABLE pt.events ADD COLUMN note text;
ALTER TABLE pt.events ATTACH PARTITION pt.events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE pt.events ATTACH PARTITION pt.events_other DEFAULT;
