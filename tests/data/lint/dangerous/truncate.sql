-- expect: truncate
SET lock_timeout = '5s';
TRUNCATE orders;
