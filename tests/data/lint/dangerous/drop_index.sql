-- expect: drop-index-without-concurrently
SET lock_timeout = '5s';
DROP INDEX orders_customer;
