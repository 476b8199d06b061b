-- Exactly three accounts (balances summing to 150) and no orders: what every test checks
-- it starts from (tests/conftest.py, assert_pristine).
INSERT INTO accounts (name, balance) VALUES
    ('alice', 100.00),
    ('bob', 50.00),
    ('carol', 0.00);
