-- expect: drop-constraint
SET lock_timeout = '5s';
ALTER TABLE orders DROP CONSTRAINT total_positive;
