-- schemas: owner change to diff_owner, comment add/change/drop, USAGE/CREATE grants on schema
-- @common
CREATE SCHEMA sales;
CREATE SCHEMA hr;
CREATE SCHEMA ops;
CREATE TABLE sales.deals (id int PRIMARY KEY, amount numeric(12,2));
-- @base
COMMENT ON SCHEMA sales IS 'sales data';
COMMENT ON SCHEMA ops IS 'operations';
GRANT USAGE ON SCHEMA ops TO diff_writer;
-- @target
ALTER SCHEMA sales OWNER TO diff_owner;
ALTER SCHEMA hr OWNER TO diff_owner;
COMMENT ON SCHEMA sales IS 'sales data (owned by diff_owner)';
COMMENT ON SCHEMA hr IS 'human resources';
GRANT USAGE ON SCHEMA sales TO diff_reader;
GRANT USAGE, CREATE ON SCHEMA hr TO diff_writer;
