-- foreign keys: add/drop, ON DELETE CASCADE / SET NULL, ON UPDATE, self-referencing FK, FKs across two schemas, change FK action, composite FK
-- @common
CREATE SCHEMA core;
CREATE SCHEMA billing;
CREATE TABLE core.companies (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE core.employees (id int PRIMARY KEY, company_id int, manager_id int, name text NOT NULL);
CREATE TABLE billing.invoices (id int PRIMARY KEY, company_id int NOT NULL, issued_by int, total numeric);
CREATE TABLE billing.lines (invoice_id int NOT NULL, n int NOT NULL, amount numeric, PRIMARY KEY (invoice_id, n));
CREATE TABLE billing.payments (id int PRIMARY KEY, invoice_id int, line_n int);
INSERT INTO core.companies VALUES (1, 'Acme'), (2, 'Globex');
INSERT INTO core.employees VALUES (1, 1, NULL, 'Boss'), (2, 1, 1, 'Worker'), (3, 2, NULL, 'Solo');
INSERT INTO billing.invoices VALUES (10, 1, 1, 100), (11, 2, 3, 50);
INSERT INTO billing.lines VALUES (10, 1, 60), (10, 2, 40), (11, 1, 50);
INSERT INTO billing.payments VALUES (1, 10, 1), (2, 11, NULL);
-- @base
ALTER TABLE core.employees ADD CONSTRAINT employees_company_fk FOREIGN KEY (company_id) REFERENCES core.companies (id);
ALTER TABLE billing.lines ADD CONSTRAINT lines_invoice_fk FOREIGN KEY (invoice_id) REFERENCES billing.invoices (id);
ALTER TABLE billing.payments ADD CONSTRAINT payments_invoice_fk FOREIGN KEY (invoice_id) REFERENCES billing.invoices (id);
-- @target
ALTER TABLE core.employees ADD CONSTRAINT employees_company_fk FOREIGN KEY (company_id) REFERENCES core.companies (id) ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE core.employees ADD CONSTRAINT employees_manager_fk FOREIGN KEY (manager_id) REFERENCES core.employees (id);
ALTER TABLE billing.invoices ADD CONSTRAINT invoices_company_fk FOREIGN KEY (company_id) REFERENCES core.companies (id) ON DELETE CASCADE;
ALTER TABLE billing.invoices ADD CONSTRAINT invoices_issued_by_fk FOREIGN KEY (issued_by) REFERENCES core.employees (id) ON DELETE SET NULL;
ALTER TABLE billing.lines ADD CONSTRAINT lines_invoice_fk FOREIGN KEY (invoice_id) REFERENCES billing.invoices (id) ON DELETE CASCADE;
ALTER TABLE billing.payments ADD CONSTRAINT payments_line_fk FOREIGN KEY (invoice_id, line_n) REFERENCES billing.lines (invoice_id, n) MATCH SIMPLE;
