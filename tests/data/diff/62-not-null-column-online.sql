-- columns: NOT NULL columns added to tables with rows: a volatile default (added online: nullable, backfilled, CHECK validated, SET NOT NULL) and a constant one (instant)
-- @common
CREATE SCHEMA nn;
CREATE TABLE nn.users (id int PRIMARY KEY, email text);
INSERT INTO nn.users VALUES (1, 'a@x'), (2, 'b@x');
-- @base
-- @target
ALTER TABLE nn.users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE nn.users ADD COLUMN tier text NOT NULL DEFAULT 'free';
