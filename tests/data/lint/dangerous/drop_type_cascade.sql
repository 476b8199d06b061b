-- expect: drop-cascade
DROP TYPE order_status CASCADE;
