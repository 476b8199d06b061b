-- expect: delete-without-where
SET lock_timeout = '5s';
DELETE FROM customers;
