-- expect: prefer-bigint-identity
CREATE TABLE invoices (id serial PRIMARY KEY, total numeric);
