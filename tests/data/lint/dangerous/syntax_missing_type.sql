-- expect: syntax-error
CREATE TABLE shipments (id bigint PRIMARY KEY, carrier);
