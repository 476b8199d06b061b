-- partitioning: RANGE partitioned table; add partition, drop partition, default partition, index on the partitioned table, sub-partitioning
-- @common
CREATE SCHEMA metrics;
CREATE TABLE metrics.measurements (id bigint NOT NULL, taken_at date NOT NULL, value double precision) PARTITION BY RANGE (taken_at);
CREATE TABLE metrics.m_2024_01 PARTITION OF metrics.measurements FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE metrics.m_2024_02 PARTITION OF metrics.measurements FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
INSERT INTO metrics.measurements VALUES (1, '2024-01-15', 1.5), (2, '2024-02-10', 2.5);
-- @base
CREATE TABLE metrics.m_2023_12 PARTITION OF metrics.measurements FOR VALUES FROM ('2023-12-01') TO ('2024-01-01');
CREATE INDEX measurements_value_idx ON metrics.measurements (value);
-- @target
CREATE TABLE metrics.m_2024_03 PARTITION OF metrics.measurements FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE metrics.m_2024_q2 PARTITION OF metrics.measurements FOR VALUES FROM ('2024-04-01') TO ('2024-07-01') PARTITION BY RANGE (taken_at);
CREATE TABLE metrics.m_2024_04 PARTITION OF metrics.m_2024_q2 FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
CREATE TABLE metrics.m_default PARTITION OF metrics.measurements DEFAULT;
CREATE INDEX measurements_taken_at_idx ON metrics.measurements (taken_at, id);
ALTER TABLE metrics.measurements ADD CONSTRAINT measurements_pkey PRIMARY KEY (id, taken_at);
