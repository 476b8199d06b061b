-- expect: vacuum-full-or-cluster
SET lock_timeout = '5s';
CLUSTER orders USING orders_pkey;
