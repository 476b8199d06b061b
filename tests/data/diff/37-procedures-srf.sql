-- procedures and set-returning functions: PROCEDURE create/drop/change body, procedure with INOUT, BEGIN ATOMIC procedure, RETURNS TABLE(...) create and change, RETURNS SETOF table type
-- @common
CREATE SCHEMA ops;
CREATE TABLE ops.jobs (id int PRIMARY KEY, state text NOT NULL DEFAULT 'queued', attempts int NOT NULL DEFAULT 0);
INSERT INTO ops.jobs (id) VALUES (1), (2);
-- @base
CREATE PROCEDURE ops.retry(job int) LANGUAGE plpgsql AS $$ BEGIN UPDATE ops.jobs SET attempts = attempts + 1 WHERE id = job; END $$;
CREATE PROCEDURE ops.purge() LANGUAGE sql AS $$ DELETE FROM ops.jobs WHERE state = 'done' $$;
CREATE FUNCTION ops.queued() RETURNS TABLE (id int, attempts int) LANGUAGE sql STABLE AS $$ SELECT id, attempts FROM ops.jobs WHERE state = 'queued' $$;
-- @target
CREATE PROCEDURE ops.retry(job int) LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ops.jobs SET attempts = attempts + 1, state = 'queued' WHERE id = job;
  COMMIT;
END $$;
CREATE PROCEDURE ops.count_jobs(INOUT n bigint DEFAULT NULL) LANGUAGE plpgsql AS $$ BEGIN SELECT count(*) INTO n FROM ops.jobs; END $$;
CREATE PROCEDURE ops.reset_all() LANGUAGE sql BEGIN ATOMIC UPDATE ops.jobs SET attempts = 0; END;
CREATE FUNCTION ops.queued(min_attempts int DEFAULT 0) RETURNS TABLE (id int, attempts int) LANGUAGE sql STABLE AS $$ SELECT id, attempts FROM ops.jobs WHERE state = 'queued' AND attempts >= min_attempts $$;
CREATE FUNCTION ops.all_jobs() RETURNS SETOF ops.jobs LANGUAGE sql STABLE AS $$ SELECT * FROM ops.jobs $$;
COMMENT ON PROCEDURE ops.retry(int) IS 'requeue a job';
