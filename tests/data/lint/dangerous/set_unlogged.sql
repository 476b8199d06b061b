-- expect: set-logged-unlogged
SET lock_timeout = '5s';
ALTER TABLE orders SET UNLOGGED;
