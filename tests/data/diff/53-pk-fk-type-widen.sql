-- column type change on a primary key referenced by FKs (int -> bigint on both sides), with indexes and a view on the columns; unique constraint widened too
-- @common
CREATE SCHEMA sales;
-- @base
CREATE TABLE sales.orders (id int PRIMARY KEY, ext_ref varchar(16) UNIQUE, placed_on date NOT NULL);
CREATE TABLE sales.order_lines (order_id int NOT NULL REFERENCES sales.orders (id) ON DELETE CASCADE, line int NOT NULL, sku text NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE public.shipments (id int PRIMARY KEY, order_id int REFERENCES sales.orders (id), carrier text);
CREATE INDEX shipments_order_idx ON public.shipments (order_id);
CREATE VIEW sales.order_line_counts AS SELECT o.id, o.ext_ref, count(l.line) AS lines FROM sales.orders o LEFT JOIN sales.order_lines l ON l.order_id = o.id GROUP BY o.id, o.ext_ref;
INSERT INTO sales.orders VALUES (1, 'EXT-1', '2024-01-01'), (2, 'EXT-2', '2024-01-02');
INSERT INTO sales.order_lines VALUES (1, 1, 'A'), (1, 2, 'B'), (2, 1, 'C');
INSERT INTO public.shipments VALUES (1, 1, 'dhl');
-- @target
CREATE TABLE sales.orders (id bigint PRIMARY KEY, ext_ref varchar(64) UNIQUE, placed_on date NOT NULL);
CREATE TABLE sales.order_lines (order_id bigint NOT NULL REFERENCES sales.orders (id) ON DELETE CASCADE, line int NOT NULL, sku text NOT NULL, PRIMARY KEY (order_id, line));
CREATE TABLE public.shipments (id int PRIMARY KEY, order_id bigint REFERENCES sales.orders (id), carrier text);
CREATE INDEX shipments_order_idx ON public.shipments (order_id);
CREATE VIEW sales.order_line_counts AS SELECT o.id, o.ext_ref, count(l.line) AS lines FROM sales.orders o LEFT JOIN sales.order_lines l ON l.order_id = o.id GROUP BY o.id, o.ext_ref;
