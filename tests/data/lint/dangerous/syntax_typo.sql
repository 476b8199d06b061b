-- expect: syntax-error
SET lock_timeout = '5s';
ALTER TABEL orders ADD COLUMN note text;
