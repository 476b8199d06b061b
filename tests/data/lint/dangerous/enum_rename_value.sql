-- expect: enum-rename-value
ALTER TYPE order_status RENAME VALUE 'open' TO 'pending';
