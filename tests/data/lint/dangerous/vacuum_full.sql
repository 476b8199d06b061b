-- expect: vacuum-full-or-cluster
-- lakelet:no-transaction
VACUUM FULL orders;
