-- Run by mariadb-install-db (--extra-file) right after the system tables
-- are created. The grant tables are not loaded yet at that point, so
-- account statements only work after FLUSH PRIVILEGES.
FLUSH PRIVILEGES;

-- Root over TCP from 127.0.0.1 with an empty password (install-db normally
-- creates these; make sure).
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'root'@'::1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;

-- install-db also creates root@<hostname>; with --skip-name-resolve the
-- server ignores that account and warns about it at every start. Drop it.
SET @extra_root = (SELECT Host FROM mysql.global_priv
                   WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1')
                   LIMIT 1);
EXECUTE IMMEDIATE IFNULL(CONCAT('DROP USER ', QUOTE('root'), '@', QUOTE(@extra_root)), 'DO 0');

-- The application account: everything an application needs, nothing
-- SUPER-like (so it does not get the extra admin connection slot).
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-secret';
CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED BY 'app-secret';
CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED BY 'app-secret';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER,
      CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW,
      CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, PROCESS, REFERENCES
      ON *.* TO 'app'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER,
      CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW,
      CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, PROCESS, REFERENCES
      ON *.* TO 'app'@'127.0.0.1';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER,
      CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW,
      CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, PROCESS, REFERENCES
      ON *.* TO 'app'@'localhost';
