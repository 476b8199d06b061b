use super::*;

/// Rule ids found, after a lock_timeout is set so that rule stays out of the way.
fn rules(sql: &str) -> Vec<&'static str> {
    raw(&format!("SET lock_timeout = '5s';\n{sql}"))
}

fn raw(sql: &str) -> Vec<&'static str> {
    lint(sql).unwrap().into_iter().map(|f| f.rule).collect()
}

fn one(sql: &str) -> Finding {
    let mut f = lint(&format!("SET lock_timeout = '5s';\n{sql}")).unwrap();
    assert_eq!(f.len(), 1, "{f:#?}");
    f.remove(0)
}

/// Under each rule id, `-` statements are flagged by exactly that rule, `+` by none.
const CASES: &str = "
add-column-not-null-without-default
  - alter table t add column a int not null
  - alter table t add a bigint primary key
  + alter table t add column a int not null default 0
add-column-volatile-default
  - alter table t add column a uuid default public.gen_random_uuid()
  - alter table t add column a text default md5(random()::text)
  - alter table t add column id bigserial
  - alter table t add column id int generated always as identity not null
  - alter table t add column b int generated always as (a * 2) stored
  + alter table t add column a timestamptz not null default now()
  + alter table t add column a int[] default array[1, 2], add b numeric(10, 2) default 0
  + alter table t alter column a set default random()
add-unique-without-index
  - alter table t add constraint u unique (a)
  - alter table t add primary key (a) using index tablespace fast
  - alter table t add column a int default 0 unique
  + alter table t add constraint u unique using index t_a
alter-column-type
  - alter table t alter column a type bigint
  - alter table t alter a set data type text using a::text
  + alter table t alter a drop not null, alter b set statistics 100
concurrently-in-transaction
  - create index concurrently i on t (a)
  - drop index concurrently i
  - reindex index concurrently i
  - do $$ begin create index concurrently i on t (a); end $$
  + /* lakelet:no-transaction */ create index concurrently i on t (a)
  + /* lakelet:no-transaction */ drop index concurrently i; reindex table concurrently t
constraint-without-not-valid
  - alter table t add constraint f foreign key (u) references u (id)
  - alter table t add check (a > 0)
  - alter table t add column u int references u (id)
  + alter table t add constraint f foreign key (u) references u (id) not valid
create-index-without-concurrently
  - create unique index if not exists i on only t using btree (a)
  - do $$ begin if not exists (select 1) then create index i on t (a); end if; end $$
  + /* lakelet:no-transaction */ create index concurrently i on t (a)
drop-cascade
  - drop schema if exists app cascade
  - drop type mood cascade
  - drop function f(int) cascade
  - drop materialized view v cascade
  + drop schema app
  + drop type mood restrict
  + create type mood as enum ('a'); drop type mood cascade
drop-column
  - alter table t drop column if exists a cascade
  - alter table t drop a
  + alter table t alter column a drop default
drop-constraint
  - alter table t drop constraint c
  - alter table t drop constraint if exists t_pkey cascade
  + alter table t add constraint c check (a > 0) not valid
drop-index-without-concurrently
  - drop index if exists i, j
  + /* lakelet:no-transaction */ drop index concurrently if exists i
delete-without-where
  - delete from customers
  - delete from only public.customers using orders o
  - delete from t where_not_a_keyword
  + delete from customers where id < 1000
  + delete from t where exists (select 1 from u where u.id = t.id)
drop-table
  - drop table if exists a, b cascade
  + drop view v
enum-add-value-in-transaction
  - alter type mood add value 'meh'
  - alter type mood add value if not exists 'meh' before 'sad'
  + /* lakelet:no-transaction */ alter type mood add value 'meh'
enum-rename-value
  - alter type mood rename value 'sad' to 'blue'
  + alter type mood rename to feeling
  + create type mood as enum ('sad'); alter type mood rename value 'sad' to 'blue'
lock-table
  - lock table t
  - lock t, u in share mode nowait
  - lock table only t in exclusive mode
  + lock table t in access share mode
  + lock table t in row exclusive mode
  + create table n (a int); lock table n
prefer-bigint-identity
  - create table t (id serial primary key)
  - create table t (id int primary key, v text)
  - create table t (id integer generated always as identity, v text, constraint p primary key (id))
  - create table t (n smallserial)
  - create table t (id int4 not null, primary key (id))
  + create table t (id bigint generated always as identity primary key, n int)
  + create table t (a int, b int, primary key (a, b))
  + create table t (id bigserial primary key)
prefer-text
  - create table t (name varchar(100))
  - create table t (name character varying(100) not null)
  - create table t (a text); alter table t add column b varchar(10)
  + create table t (name text check (length(name) <= 100), v varchar, w character varying)
prefer-text-over-char
  - create table t (code char(2))
  - create table t (code character(2) not null)
  - create table t (flag char)
  + create table t (code text, k \"char\")
prefer-timestamptz
  - create table t (created timestamp)
  - create table t (created timestamp(3) without time zone default now())
  - alter table t add column seen pg_catalog.timestamp
  + create table t (created timestamptz, b timestamp with time zone, c timestamp(3) with time zone)
  + create table t (d date, t time, i interval)
rename-column
  - alter table t rename column a to b
  + alter table t rename constraint a to b
rename-table
  - alter table t rename to u
set-logged-unlogged
  - alter table t set unlogged
  - alter table t set logged
  + alter table t set (fillfactor = 70)
  + create table n (a int); alter table n set logged
reindex-without-concurrently
  - reindex (verbose) index i
  + /* lakelet:no-transaction */ reindex table concurrently t
  + reindex system d
set-not-null
  - alter table t alter column a set not null
syntax-error
  - alter table t add column
  - alter table t add column a
  - alter table t add a not null
  - alter table t add column a int,
  - alter table t
  - alter table t drop column
  - create table t
  - create index i on t (a
  - select (1))
  - altr table t add a int
  - update t
  - delete t
  - drop table
  - /* lakelet:allow syntax-error */ alter table t add column
  + alter table ${t} add column ${c} ${type}
  + (select 1) union (select 2)
  + select
  + vacuum
truncate
  - truncate table only t restart identity
  + delete from t where id < 1000
update-without-where
  - update inventory set code = upper(code)
  - do $$ begin update t set a = 1; end $$
  - do $x$ declare n int := 0; begin <<l>> loop update t set a = n; exit; end loop; end $x$
  - do language plpgsql 'begin if true then update t set a = 1; else null; end if; end'
  - create procedure p() language plpgsql as $$ begin update t set a = 1; end $$; call p()
  - create function f() returns void as $$ update t set a = 1 $$ language sql; select f()
  + do $$ begin update t set a = 1 where id < 10; delete from t where id = 1; end $$
  + do $$ declare r record; begin for r in select * from t loop update t set a = 1 where \
      id = r.id; end loop; end $$
  + create function f() returns trigger language plpgsql as $$ begin NEW.a := 1; update t \
      set a = 1; return NEW; end $$
  + do $$ begin execute 'update t set a = 1'; end $$
  + do $$ declare x int; begin x := 1; perform 1; raise notice 'update t set a = 1'; end $$
  + do language plpython3u $$ plpy.execute('update t set a = 1') $$
  - update t set a = (select max(b) from u where u.id = t.id)
  - update only public.t as x set a = 1
  + update inventory set code = upper(code) where code <> upper(code)
  + update t set a = 1 where current of c
vacuum-full-or-cluster
  - vacuum (full, analyze) t
  - vacuum full
  - cluster t using i
  + vacuum (full false) t
  + vacuum analyze t
validate-in-same-transaction
  - alter table t add constraint c check (a > 0) not valid; alter table t validate constraint c
  + alter table t validate constraint c";

#[test]
fn each_rule_flags_its_danger_and_passes_the_safe_form() {
    let mut rule = "";
    for line in CASES.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(' ') {
            Some(("-", sql)) => assert_eq!(rules(sql), [rule], "{sql}"),
            Some(("+", sql)) => assert_eq!(rules(sql), [""; 0], "{sql}"),
            _ => rule = RULES.iter().find(|r| r.id == line).expect("a rule id").id,
        }
    }
    let sql = "-- lakelet:no-transaction\nalter table t add constraint c check (a > 0) not \
               valid;\nalter table t validate constraint c";
    assert!(rules(sql).is_empty());
}

#[test]
fn rules_are_sorted_unique_kebab_case_and_all_tested() {
    assert!(RULES.windows(2).all(|w| w[0].id < w[1].id));
    for r in RULES {
        assert!(
            r.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{}",
            r.id
        );
        let tested = CASES.contains(&format!("\n{}\n", r.id));
        assert!(tested || ["missing-lock-timeout", "unknown-rule"].contains(&r.id));
    }
}

#[test]
fn findings_name_the_objects_and_give_the_online_form() {
    let f = one("alter table public.orders drop column note cascade");
    assert_eq!(
        (f.line, f.statement.as_str()),
        (2, "alter table public.orders drop column note cascade")
    );
    assert!(f.message.contains("public.orders.note") && f.message.contains("CASCADE"));
    assert!(f.fix.contains("Expand/contract") && f.acknowledged.is_none());
    assert!(one("drop table a cascade").message.contains("CASCADE"));
    assert!(one("create index i on t (a)").message.contains("i on t"));
    assert!(one("create index on t (a)").fix.contains("CONCURRENTLY"));
    let f = one("alter table t add constraint c check (a > 0)");
    assert!(f.fix.contains("VALIDATE CONSTRAINT c"), "{}", f.fix);
    assert!(one("alter table t alter a set not null")
        .fix
        .contains("CHECK (a IS NOT NULL) NOT VALID"));
}

#[test]
fn every_action_of_a_multi_action_alter_is_checked() {
    let sql = "alter table t add column a int not null, drop column b,\n\
               alter column c type text, add column d int default random(), add unique (e)";
    let want = [
        "add-column-not-null-without-default",
        "drop-column",
        "alter-column-type",
        "add-column-volatile-default",
        "add-unique-without-index",
    ];
    assert_eq!(rules(sql), want);
}

#[test]
fn tables_created_in_the_same_file_are_exempt() {
    let sql = "create table t (id int);\ncreate index i on t (id);\n\
               alter table t add constraint f foreign key (id) references t (id);\n\
               alter table t add unique (id), alter id set not null, add x int not null;\n\
               alter table t alter id type bigint;\nalter table t rename id to key;\n\
               drop index i;\ndrop table t";
    assert_eq!(raw(sql), [""; 0]);
    let sql = "create temp table s (a int); alter table s rename to s2; create index on s2 (a)";
    assert!(raw(sql).is_empty());
    let sql = "create table t (a int); create index on u (a)";
    assert_eq!(rules(sql), ["create-index-without-concurrently"]);
}

#[test]
fn set_not_null_after_a_validated_not_null_check_is_fine() {
    let ok = "-- lakelet:no-transaction\n\
              alter table t add constraint a_nn check (a is not null) not valid;\n\
              alter table t validate constraint a_nn;\n\
              alter table t alter column a set not null";
    assert!(rules(ok).is_empty());
    let ok = "alter table t add check (a is not null); alter table t alter a set not null";
    assert_eq!(rules(ok), ["constraint-without-not-valid"]);
    // Validated here, added by an earlier migration: matched by its name.
    let ok = "alter table t validate constraint t_a_not_null; alter table t alter a set not null";
    assert!(rules(ok).is_empty());
    let bad = "alter table t validate constraint t_ab_check; alter table t alter a set not null";
    assert_eq!(rules(bad), ["set-not-null"]);
}

#[test]
fn missing_lock_timeout_is_reported_once_at_the_first_locking_statement() {
    let sql = "select 1;\ncreate index concurrently i on t (a);\n\
               alter table t add a int;\ndrop table u";
    let f = lint(sql).unwrap();
    let got: Vec<_> = f.iter().map(|f| (f.rule, f.line)).collect();
    // The runner refuses a file mixing CREATE INDEX CONCURRENTLY with other statements.
    let want = [
        ("concurrently-in-transaction", 2),
        ("missing-lock-timeout", 3),
        ("drop-table", 4),
    ];
    assert_eq!(got, want);
    assert!(f[1].message.contains("locks t") && f[1].fix.contains("SET lock_timeout = '5s'"));
    for ok in [
        "set local lock_timeout to '2s'",
        "set lock_timeout = 5000",
        "select set_config('lock_timeout', '3s', true)",
    ] {
        assert!(
            raw(&format!("{ok};\nalter table t add a int")).is_empty(),
            "{ok}"
        );
    }
    for off in [
        "set lock_timeout = 0",
        "set lock_timeout = '5s'; reset lock_timeout",
        "set statement_timeout = '5s'",
        "-- lakelet:no-transaction\nset local lock_timeout = '1s'",
    ] {
        let got = raw(&format!("{off};\nalter table t add a int"));
        assert_eq!(got, ["missing-lock-timeout"], "{off}");
    }
    // A new table referencing an existing one locks the referenced table's writers out.
    let f = lint("create table c (u int references app.users (id))").unwrap();
    assert!(f[0].message.contains("app.users"), "{f:?}");
    assert!(raw("alter table t validate constraint c; create table c (id int)").is_empty());
    let sql = "create table p1 partition of p for values in (1)";
    assert_eq!(raw(sql), ["missing-lock-timeout"]);
    // An explicit lock waits like any other; NOWAIT does not wait.
    assert_eq!(raw("lock table t"), ["missing-lock-timeout", "lock-table"]);
    assert_eq!(raw("lock table t in share mode nowait"), ["lock-table"]);
    // So does a statement in a DO block, and a lock_timeout set in one counts.
    let sql = "do $$ begin alter table t add a int; end $$";
    assert_eq!(raw(sql), ["missing-lock-timeout"]);
    let sql = "do $$ begin set local lock_timeout = '1s'; alter table t add a int; end $$";
    assert!(raw(sql).is_empty());
}

#[test]
fn acknowledgements_per_statement_and_per_file() {
    let sql = "set lock_timeout = '5s';\n-- lakelet:allow drop-column moved to V40\n\
               alter table t drop column a;\n/* lakelet:allow rename-column */\n\
               alter table t rename b to c;\nalter table t drop column d";
    let acks: Vec<_> = lint(sql)
        .unwrap()
        .into_iter()
        .map(|f| f.acknowledged)
        .collect();
    assert_eq!(
        acks,
        [Some("moved to V40".into()), Some(String::new()), None]
    );
    let sql = "-- lakelet:allow-file drop-table, truncate old queue\nset lock_timeout = '5s';\n\
               drop table q;\ntruncate r";
    let f = lint(sql).unwrap();
    assert_eq!(f.len(), 2);
    assert!(
        f.iter()
            .all(|f| f.acknowledged.as_deref() == Some("old queue")),
        "{f:#?}"
    );
    let f = lint("-- lakelet:allow missing-lock-timeout,drop-table tiny\ndrop table q").unwrap();
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f.acknowledged.as_deref() == Some("tiny")));
}

#[test]
fn unknown_rules_in_allow_directives_are_reported() {
    let sql = "set lock_timeout = '5s';\n-- lakelet:allow drop-colum moved\n\
               alter table t drop column a;\n-- lakelet:allow-file nonsense\n\
               -- lakelet:allow\nselect 1";
    let f = lint(sql).unwrap();
    let got: Vec<_> = f
        .iter()
        .map(|f| (f.rule, f.line, f.acknowledged.is_some()))
        .collect();
    let want = [
        ("unknown-rule", 2, false),
        ("drop-column", 3, false),
        ("unknown-rule", 4, false),
        ("unknown-rule", 5, false),
    ];
    assert_eq!(got, want);
    assert!(f[0].fix.contains("`drop-column`") && f[0].statement.contains("drop-colum"));
    assert!(raw("-- lakelet:no-transaction\n-- lakelet:allow-file truncate\nselect 1").is_empty());
}

#[test]
fn names_fold_like_postgres_and_ignore_schemas_and_noise_words() {
    let sql = "create table app.\"Users\" (id int); create index on \"Users\" (id);\n\
               alter table if exists only \"Users\" drop column id";
    assert!(raw(sql).is_empty());
    let sql = "create table \"Users\" (id int); create index on users (id)";
    assert_eq!(rules(sql), ["create-index-without-concurrently"]);
    let f = one("alter table \"Odd Name\" rename column \"A b\" to c");
    assert!(f.message.contains("Odd Name.A b"), "{}", f.message);
    assert!(rules("create table s.t (a int); alter table S.T add b int not null").is_empty());
}

proptest::proptest! {
    /// Whatever keyword soup a script holds, lint returns instead of panicking.
    #[test]
    fn lint_never_panics(words in proptest::collection::vec(
        "(alter|table|add|drop|column|index|on|create|unique|concurrently|constraint|check|\
          foreign|key|references|not|null|valid|default|rename|to|type|set|truncate|vacuum|\
          full|cluster|reindex|validate|if|exists|only|using|primary|partition|of|lock_timeout|\
          update|delete|from|where|lock|do|\\$\\$|begin|end|then|loop|cascade|schema|value|\
          logged|serial|varchar|char|timestamp|call|select|language|function|as|\
          t|s|random|[(),.;*=]|'5s'|0|-- lakelet:allow x|-- lakelet:allow-file)", 0..40)) {
        let _ = lint(&words.join(" "));
    }
}

#[test]
fn text_in_strings_comments_and_bodies_is_not_a_statement() {
    let sql = "select 'drop table x';\n-- drop table x;\n/* truncate y; */\n\
               create function f() returns void language sql as $$ alter table t drop a $$;\n\
               insert into log values ('vacuum full t')";
    assert!(raw(sql).is_empty());
    assert_eq!(lint("select 'oops").unwrap_err().line, 1);
}

/// A table this file creates is empty and invisible to others: filling or emptying it whole
/// is no finding; the same statements on an existing table are.
#[test]
fn whole_table_writes_count_only_on_existing_tables() {
    let sql = "create table staging_rows (id int, v text);\n\
               update staging_rows set v = upper(v);\n\
               delete from staging_rows;\n\
               update customers set email = lower(email);\n\
               delete from customers;\n";
    assert_eq!(
        rules(sql),
        vec!["update-without-where", "delete-without-where"]
    );
    let f = one("update customers set email = lower(email)");
    assert!(
        f.message.contains("UPDATE customers without WHERE"),
        "{f:?}"
    );
    assert!(f.fix.contains("Backfill in batches"), "{f:?}");
}

/// The runner runs a file outside a transaction when it says `no-transaction` or when all
/// its statements must; CONCURRENTLY is flagged exactly where it would fail or be refused.
#[test]
fn concurrently_is_flagged_where_the_runner_would_run_it_in_a_transaction() {
    for ok in [
        "create index concurrently i on t (a)",
        "create index concurrently i on t (a);\ndrop index concurrently j",
        "-- lakelet:no-transaction\ncreate index concurrently i on t (a)",
        "-- lakelet:no-transaction\nset lock_timeout = '5s';\ncreate index concurrently i on t \
         (a);\nalter table t add a int",
        "begin;\ncommit;\ncreate index concurrently i on t (a)",
    ] {
        assert!(raw(ok).is_empty(), "{ok}: {:?}", raw(ok));
    }
    let f = lint("begin;\ncreate index concurrently i on t (a);\ncommit").unwrap();
    assert_eq!((f[0].rule, f[0].line), ("concurrently-in-transaction", 2));
    assert!(f[0].message.contains("BEGIN … COMMIT"), "{}", f[0].message);
    let f = one("create index concurrently i on t (a)");
    assert!(
        f.message.contains("refuses") && f.fix.contains("no-transaction"),
        "{f:?}"
    );
    let f = one("do $$ begin drop index concurrently i; end $$");
    assert!(f.message.contains("DO block"), "{}", f.message);
}

/// The online forms of common changes lint clean, file by file.
#[test]
fn safe_patterns_lint_clean() {
    for ok in [
        "-- lakelet:no-transaction\ncreate index concurrently orders_region on orders (region)",
        "set lock_timeout = '5s';\nalter table orders add column note text",
        "set lock_timeout = '5s';\nalter table orders add constraint qty_positive \
         check (qty > 0) not valid",
        "alter table orders validate constraint qty_positive",
        "set lock_timeout = '5s';\nalter table orders add column region text not null default 'eu'",
        "create table items (id bigint generated always as identity primary key, name text \
         check (length(name) <= 200), created timestamptz not null default now())",
        "do $$ begin update orders set region = 'eu' where region is null and id < 1000;\n\
         delete from orders where id = 0; end $$",
        "create function touch() returns trigger language plpgsql as $$ begin \
         NEW.updated := now(); return NEW; end $$",
    ] {
        assert!(raw(ok).is_empty(), "{ok}: {:?}", raw(ok));
    }
}

/// A body's statements report at the line of the statement that runs them.
#[test]
fn statements_in_a_do_block_report_at_the_do() {
    let sql = "set lock_timeout = '5s';\n\ndo $$\nbegin\n  update t set a = 1;\nend $$;\n";
    let f = lint(sql).unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].rule, f[0].line), ("update-without-where", 3));
    assert_eq!(f[0].statement, "do $$…");
    assert!(f[0].message.contains("UPDATE t"), "{}", f[0].message);
}

#[test]
fn a_syntax_error_cannot_be_acknowledged() {
    let sql = "-- lakelet:allow-file syntax-error\n-- lakelet:allow syntax-error why not\n\
               ALTER TABLE t ADD COLUMN;";
    let f = lint(sql).unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].rule, f[0].line), ("syntax-error", 3));
    assert!(f[0].acknowledged.is_none());
    // Postgres's own parser's words.
    assert!(
        f[0].message.contains("syntax error at end of input"),
        "{}",
        f[0].message
    );
    let f = one("alter table t add column a");
    assert!(f.message.contains("at end of input"), "{}", f.message);
    let f = one("create tabel t (id bigint)");
    assert!(f.message.contains("at or near \"tabel\""), "{}", f.message);
}

#[test]
fn new_rules_name_what_they_found() {
    let f = one("alter table t add column b int generated always as (a * 2) stored");
    assert!(
        f.message.contains("is a stored generated column"),
        "{}",
        f.message
    );
    assert!(
        !f.message.contains("DEFAULT") && f.fix.contains("trigger"),
        "{f:?}"
    );
    let f = one("drop schema app cascade");
    assert!(
        f.message.contains("DROP SCHEMA app CASCADE"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("tables with their data"),
        "{}",
        f.message
    );
    let f = one("alter table public.orders drop constraint orders_pkey");
    assert!(
        f.message.contains("orders_pkey from public.orders"),
        "{}",
        f.message
    );
    assert!(f.message.contains("replication"), "{}", f.message);
    let f = one("lock table orders in exclusive mode");
    assert!(
        f.message.contains("orders IN EXCLUSIVE MODE"),
        "{}",
        f.message
    );
    let f = one("alter table orders set unlogged");
    assert!(f.message.contains("SET UNLOGGED") && f.message.contains("orders"));
    let f = one("alter type mood add value 'meh'");
    assert!(
        f.message.contains("'meh'") && f.fix.contains("no-transaction"),
        "{f:?}"
    );
    let f = one("alter type mood rename value 'sad' to 'blue'");
    assert!(
        f.message.contains("'sad' of enum mood to 'blue'"),
        "{}",
        f.message
    );
    let f = one("create table t (name varchar(100))");
    assert!(
        f.fix.contains("name text CHECK (length(name) <= 100)"),
        "{}",
        f.fix
    );
    let f = one("create table t (id serial primary key)");
    assert!(
        f.message.contains("primary key t.id is serial"),
        "{}",
        f.message
    );
    assert!(
        f.fix.contains("bigint GENERATED ALWAYS AS IDENTITY"),
        "{}",
        f.fix
    );
}

/// Each column gets at most one piece of type advice; a table this file creates gets it too.
#[test]
fn column_type_advice_is_one_finding_per_column() {
    let sql = "create table t (id serial, c char(2), v varchar(3), ts timestamp, ok text);\n\
               alter table t add column n int primary key";
    let want = [
        "prefer-bigint-identity",
        "prefer-text-over-char",
        "prefer-text",
        "prefer-timestamptz",
        "prefer-bigint-identity",
    ];
    assert_eq!(rules(sql), want);
}
