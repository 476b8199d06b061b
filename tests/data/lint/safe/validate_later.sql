SET lock_timeout = '5s';
ALTER TABLE orders VALIDATE CONSTRAINT total_positive;
