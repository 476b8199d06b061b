-- expect: concurrently-in-transaction
-- lakelet:no-transaction
BEGIN;
CREATE INDEX CONCURRENTLY orders_customer ON orders (customer_id);
COMMIT;
