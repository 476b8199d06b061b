-- lakelet:no-transaction
SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer ON orders (customer_id);
DROP INDEX CONCURRENTLY IF EXISTS orders_old;
