-- constraints: primary key add/drop/change columns, unique add/drop, multi-column unique, UNIQUE NULLS NOT DISTINCT
-- @common
CREATE SCHEMA acct;
-- @base
CREATE TABLE acct.users (id int NOT NULL, login text NOT NULL, email text);
CREATE TABLE acct.memberships (user_id int NOT NULL, group_id int NOT NULL, role text, CONSTRAINT memberships_pkey PRIMARY KEY (user_id));
CREATE TABLE acct.logins (id int PRIMARY KEY, ip inet, CONSTRAINT logins_ip_key UNIQUE (ip));
CREATE TABLE acct.codes (code text, scope text);
INSERT INTO acct.users VALUES (1, 'ann', 'ann@x.io'), (2, 'bob', NULL), (3, 'cy', 'cy@x.io');
INSERT INTO acct.memberships VALUES (1, 10, 'admin'), (2, 10, 'user');
INSERT INTO acct.logins VALUES (1, '10.0.0.1'), (2, '10.0.0.1'::inet + 1);
INSERT INTO acct.codes VALUES ('a', 's1'), ('a', 's2'), ('b', NULL);
-- @target
CREATE TABLE acct.users (id int NOT NULL, login text NOT NULL, email text,
  CONSTRAINT users_pkey PRIMARY KEY (id), CONSTRAINT users_login_key UNIQUE (login), CONSTRAINT users_email_key UNIQUE (email));
CREATE TABLE acct.memberships (user_id int NOT NULL, group_id int NOT NULL, role text, CONSTRAINT memberships_pkey PRIMARY KEY (user_id, group_id));
CREATE TABLE acct.logins (id int, ip inet);
CREATE TABLE acct.codes (code text, scope text, CONSTRAINT codes_code_scope_key UNIQUE NULLS NOT DISTINCT (code, scope));
