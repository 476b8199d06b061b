SET lock_timeout = '5s';
UPDATE orders SET status = 'closed' WHERE closed_at < now() - interval '1 year';
DELETE FROM sessions WHERE expires_at < now();
