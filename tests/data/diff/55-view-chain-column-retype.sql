-- a column type change under a view chain, online NOT NULL, identity table with FK, enum value, function body, schema with a view
-- @common
create type mood as enum ('sad','ok','happy');
create table t (id int primary key, name text, m mood default 'ok', price numeric(10,2));
insert into t values (1,'a','sad',1.5),(2,'b','ok',2);
create view v1 as select id, name from t;
create view v2 as select id, name from v1;
create function f(x int) returns int language sql as 'select x+1';
-- @base
create index t_name on t(name);
-- @target
alter type mood add value 'meh' after 'ok';
drop view v1 cascade;
alter table t alter column name type varchar(100);
create view v1 as select id, name from t;
create view v2 as select id, name from v1;
alter table t alter column price type numeric(12,2);
alter table t add column email text not null default '';
alter table t alter column name set not null;
create table u (id int generated always as identity primary key, t_id int references t(id), note varchar(20));
create index concurrently u_t on u(t_id);
create or replace function f(x int) returns int language sql as 'select x+2';
comment on table t is 'things';
grant select on t to diff_reader;
create schema s2;
create view s2.v3 as select * from v2;
