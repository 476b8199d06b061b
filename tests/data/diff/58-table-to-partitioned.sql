-- partitions: a plain table with rows, a serial key, an index, a view over it and a foreign key to it becomes a partitioned table (the reverse direction turns it back); its rows are copied, not lost
-- @common
CREATE SCHEMA tp;
CREATE TABLE tp.customers (id int PRIMARY KEY);
INSERT INTO tp.customers VALUES (1), (2);
-- @base
CREATE TABLE tp.orders (id serial, placed date NOT NULL, customer_id int NOT NULL REFERENCES tp.customers(id), total numeric(10,2), PRIMARY KEY (id, placed));
CREATE INDEX orders_customer_idx ON tp.orders (customer_id);
CREATE VIEW tp.big_orders AS SELECT id, total FROM tp.orders WHERE total > 100;
INSERT INTO tp.orders (placed, customer_id, total) VALUES ('2024-01-05', 1, 50), ('2024-02-07', 2, 500), ('2025-06-01', 1, 120);
-- @target
CREATE TABLE tp.orders (id serial, placed date NOT NULL, customer_id int NOT NULL REFERENCES tp.customers(id), total numeric(10,2), PRIMARY KEY (id, placed)) PARTITION BY RANGE (placed);
CREATE TABLE tp.orders_2024 PARTITION OF tp.orders FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE tp.orders_rest PARTITION OF tp.orders DEFAULT;
CREATE INDEX orders_customer_idx ON tp.orders (customer_id);
CREATE VIEW tp.big_orders AS SELECT id, total FROM tp.orders WHERE total > 100;
INSERT INTO tp.orders (placed, customer_id, total) VALUES ('2024-01-05', 1, 50), ('2024-02-07', 2, 500), ('2025-06-01', 1, 120);
