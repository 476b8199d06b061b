-- expect: add-column-volatile-default
SET lock_timeout = '5s';
ALTER TABLE orders ADD COLUMN seq bigserial;
