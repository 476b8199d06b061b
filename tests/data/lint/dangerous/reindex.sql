-- expect: reindex-without-concurrently
SET lock_timeout = '5s';
REINDEX INDEX orders_customer;
