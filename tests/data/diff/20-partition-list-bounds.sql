-- partitioning: LIST partitioned table (add/drop partition, change list bound), RANGE bound change, HASH partitioned table created
-- @common
CREATE TABLE public.orders_by_region (id int NOT NULL, region text NOT NULL, total numeric) PARTITION BY LIST (region);
CREATE TABLE public.orders_eu PARTITION OF public.orders_by_region FOR VALUES IN ('de', 'fr');
CREATE TABLE public.logs (id int NOT NULL, n int NOT NULL) PARTITION BY RANGE (n);
INSERT INTO public.orders_by_region VALUES (1, 'de', 10), (2, 'fr', 20);
-- @base
CREATE TABLE public.orders_us PARTITION OF public.orders_by_region FOR VALUES IN ('us');
CREATE TABLE public.orders_apac PARTITION OF public.orders_by_region FOR VALUES IN ('jp', 'au');
CREATE TABLE public.logs_low PARTITION OF public.logs FOR VALUES FROM (0) TO (100);
INSERT INTO public.orders_by_region VALUES (3, 'us', 30);
INSERT INTO public.logs VALUES (1, 5), (2, 50);
-- @target
CREATE TABLE public.orders_us PARTITION OF public.orders_by_region FOR VALUES IN ('us', 'ca');
CREATE TABLE public.orders_latam PARTITION OF public.orders_by_region FOR VALUES IN ('br', 'mx');
CREATE TABLE public.logs_low PARTITION OF public.logs FOR VALUES FROM (0) TO (200);
CREATE TABLE public.shards (id int NOT NULL, body text) PARTITION BY HASH (id);
CREATE TABLE public.shards_0 PARTITION OF public.shards FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE public.shards_1 PARTITION OF public.shards FOR VALUES WITH (MODULUS 2, REMAINDER 1);
