-- expect: create-index-without-concurrently
SET lock_timeout = '5s';
CREATE INDEX orders_customer ON orders (customer_id);
