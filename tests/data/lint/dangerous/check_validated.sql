-- expect: constraint-without-not-valid
SET lock_timeout = '5s';
ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0);
