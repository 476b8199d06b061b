-- expect: drop-cascade
DROP SCHEMA reporting CASCADE;
