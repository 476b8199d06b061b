-- expect: syntax-error
SET lock_timeout = '5s';
ALTER TABLE orders ADD CONSTRAINT c CHECK ((total > 0);
