SET lock_timeout = '5s';
-- DROP TABLE orders; is only a comment
COMMENT ON TABLE orders IS 'never TRUNCATE orders';
