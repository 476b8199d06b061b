-- enums: a value is removed (needs enum recreation) while the enum is used by a column with a default, a function argument, an index predicate and a view; data never uses the removed value
-- @common
CREATE SCHEMA wf;
-- @base
CREATE TYPE wf.state AS ENUM ('todo', 'doing', 'blocked', 'done');
CREATE TABLE wf.tasks (id int PRIMARY KEY, title text NOT NULL, state wf.state NOT NULL DEFAULT 'todo');
CREATE INDEX tasks_open_idx ON wf.tasks (id) WHERE state <> 'done';
CREATE FUNCTION wf.count_in(s wf.state) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM wf.tasks WHERE state = s $$;
CREATE VIEW wf.open_tasks AS SELECT id, title, state FROM wf.tasks WHERE state IN ('todo', 'doing');
INSERT INTO wf.tasks VALUES (1, 'write', 'todo'), (2, 'test', 'doing'), (3, 'ship', 'done');
-- @target
CREATE TYPE wf.state AS ENUM ('todo', 'doing', 'done');
CREATE TABLE wf.tasks (id int PRIMARY KEY, title text NOT NULL, state wf.state NOT NULL DEFAULT 'todo');
CREATE INDEX tasks_open_idx ON wf.tasks (id) WHERE state <> 'done';
CREATE FUNCTION wf.count_in(s wf.state) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM wf.tasks WHERE state = s $$;
CREATE VIEW wf.open_tasks AS SELECT id, title, state FROM wf.tasks WHERE state IN ('todo', 'doing');
INSERT INTO wf.tasks VALUES (1, 'write', 'todo'), (2, 'test', 'doing'), (3, 'ship', 'done');
